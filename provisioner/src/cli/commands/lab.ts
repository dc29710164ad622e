// Placeholder until the lab lands: refuses clearly.
export async function labCommand(_argv: string[]): Promise<number> {
  console.error('epoch-provision lab: not available in this build');
  return 2;
}
