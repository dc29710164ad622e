// epoch-agent entry point (placeholder until the agent core lands).
const version = process.env.EPOCH_AGENT_VERSION ?? 'dev';
const [command] = process.argv.slice(2);
if (command === '--version' || command === 'version') {
  console.log(`epoch-agent ${version} node ${process.version}`);
} else {
  console.error('usage: epoch-agent run --config FILE | check-config FILE | ca init | --version');
  process.exitCode = 2;
}
