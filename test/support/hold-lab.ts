// Test fixture process: brings up a lab with startLab(), prints its state as one JSON line, then waits to be killed.
// Used to simulate a killed test run (test/lab/lab-clean.test.ts).
//   node --import tsx test/support/hold-lab.ts NAME HOSTS
import { startLab } from './lab';

const [name, hosts] = process.argv.slice(2);
startLab({ name, hosts: Number(hosts ?? 1) }).then(
  (lab) => {
    process.stdout.write(`${JSON.stringify({ name: lab.name, hosts: lab.hosts })}\n`);
    setInterval(() => {}, 60_000);
  },
  (e: unknown) => {
    console.error(`hold-lab: ${(e as Error).message}`);
    process.exit(1);
  },
);
