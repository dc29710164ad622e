// A probe's output did not have the shape its parser expects. Carries the raw output for the report.
export class FactParseError extends Error {
  constructor(
    readonly fact: string,
    detail: string,
    readonly output: string,
  ) {
    super(`cannot read fact ${fact}: ${detail}`);
    this.name = 'FactParseError';
  }
}
