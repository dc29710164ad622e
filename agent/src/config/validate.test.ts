import assert from 'node:assert/strict';
import { test } from 'node:test';
import { array, boolean, integer, object, oneOf, optional, record, refine, section, string, validate, withDefault } from './validate';

const inner = object({ n: withDefault(integer(1, 9), 5), on: withDefault(boolean(), true) });
const schema = object({
  name: string({ minLength: 1 }),
  mode: withDefault(oneOf(['a', 'b']), 'a'),
  list: withDefault(array(integer(0)), [1, 2]),
  part: section(inner),
  extra: optional(record(string())),
  even: optional(refine(integer(), (n) => (n % 2 === 0 ? null : 'expected an even number'))),
});

const issuesOf = (v: unknown) => {
  const r = validate(schema, v);
  assert.equal(r.ok, false, 'expected issues');
  return r.ok ? [] : r.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}${i.showValue ? '' : ' [no value]'}`);
};

test('defaults fill what is absent; a missing section gets its own defaults; an optional field stays absent', () => {
  const r = validate(schema, { name: 'x' });
  assert.deepEqual(r, { ok: true, value: { name: 'x', mode: 'a', list: [1, 2], part: { n: 5, on: true } } });
  assert.equal('extra' in (r.ok ? r.value : {}), false);
});

test('a valid full input comes back equal (already-valid twin); defaults are fresh copies each time', () => {
  const full = { name: 'y', mode: 'b', list: [0, 7], part: { n: 9, on: false }, extra: { k: 'v' }, even: 4 };
  assert.deepEqual(validate(schema, full), { ok: true, value: full });
  const first = validate(schema, { name: 'x' });
  if (first.ok) first.value.list.push(99);
  const second = validate(schema, { name: 'x' });
  assert.deepEqual(second.ok && second.value.list, [1, 2]);
});

test('every problem is reported with its path, in zod-like words; unknown keys carry no value', () => {
  assert.deepEqual(issuesOf({ name: '', mode: 'c', list: [1, -1, 1.5, 'x'], part: { n: 10, on: 'yes', typo: 1 }, extra: { k: 1 }, even: 3, a: 1, b: 2 }), [
    'name: Too small: expected string to have >=1 characters',
    'mode: Invalid option: expected one of "a"|"b"',
    'list.1: Too small: expected number to be >=0',
    'list.2: Invalid input: expected int, received number',
    'list.3: Invalid input: expected number, received string',
    'part.n: Too big: expected number to be <=9',
    'part.on: Invalid input: expected boolean, received string',
    'part: Unrecognized key: "typo" [no value]',
    'extra.k: Invalid input: expected string, received number',
    'even: expected an even number',
    '(top): Unrecognized keys: "a", "b" [no value]',
  ]);
});

test('wrong shapes: a missing required field, null, arrays for objects, NaN, too few items', () => {
  assert.deepEqual(issuesOf({}), ['name: Invalid input: expected string, received undefined']);
  assert.deepEqual(issuesOf(null), ['(top): Invalid input: expected object, received null']);
  assert.deepEqual(issuesOf([]), ['(top): Invalid input: expected object, received array']);
  assert.deepEqual(issuesOf({ name: 'x', part: [], list: [Number.NaN] }), ['list.0: Invalid input: expected number, received NaN', 'part: Invalid input: expected object, received array']);
  const atLeastOne = object({ l: array(string(), { minItems: 1 }) });
  const r = validate(atLeastOne, { l: [] });
  assert.deepEqual(!r.ok && r.issues.map((i) => i.message), ['Too small: expected array to have >=1 items']);
});
