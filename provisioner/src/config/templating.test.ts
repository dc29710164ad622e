import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../core/errors';
import { Problems } from './problems';
import { filterTasksByTags, shouldRunTags } from './tags';
import { checkTemplates, parseTemplate, Resolver } from './templating';
import { VaultValue } from './vault';
import { ansibleBool, evaluateWhen } from './when';

const vars = {
  port: 443,
  ports: [443, 8443],
  user: { name: 'deploy', groups: ['adm'] },
  greeting: 'hello {{ user.name }}',
  empty: '',
  flag: 'yes',
  env: 'prod',
  loop_a: '{{ loop_b }}',
  loop_b: '{{ loop_a }}',
};
const r = () => new Resolver(vars, { loop_a: 'vars.yml:1:9', loop_b: 'vars.yml:2:9' });
const resolve = (text: string) => r().resolveString(text, 'play.yml:3:5');
const problemOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.problems.map((p) => `${p.location}: ${p.message}`).join('\n');
    throw e;
  }
  assert.fail('expected a ConfigError');
};

test('a whole-value reference keeps its type', () => {
  assert.equal(resolve('{{ port }}'), 443);
  assert.deepEqual(resolve('{{ports}}'), [443, 8443]);
  assert.deepEqual(resolve('{{ user }}'), { name: 'deploy', groups: ['adm'] });
});

test('attributes, indexes, interpolation and nested templates', () => {
  assert.equal(resolve('{{ user.name }}'), 'deploy');
  assert.equal(resolve("{{ user['groups'][0] }}"), 'adm');
  assert.equal(resolve('{{ ports.1 }}'), 8443);
  assert.equal(resolve('https://x:{{ port }}/{{ user.name }}'), 'https://x:443/deploy');
  assert.equal(resolve('{{ greeting }}!'), 'hello deploy!');
  assert.equal(resolve('no templates here'), 'no templates here');
});

test('default(): literal, variable, and the falsy form', () => {
  assert.equal(resolve("{{ missing | default('x') }}"), 'x');
  assert.equal(resolve('{{ missing | d(7) }}'), 7);
  assert.equal(resolve('{{ missing | default(port) }}'), 443);
  assert.equal(resolve("{{ empty | default('fallback') }}"), '');
  assert.equal(resolve("{{ empty | default('fallback', true) }}"), 'fallback');
  assert.equal(resolve('{{ user.nope | default(false) }}'), false);
});

test('Jinja whitespace control and omit', () => {
  assert.equal(resolve('a {{- port }} b'), 'a443 b');
  assert.equal(resolve('a {{ port -}}   b'), 'a 443b');
  assert.equal(resolve('{{- port -}}'), 443);
  assert.deepEqual(r().resolveValue({ keep: '{{ port }}', drop: '{{ nope | default(omit) }}' }, () => ''), { keep: 443 });
  assert.match(problemOf(() => resolve('x{{ nope | default(omit) }}')), /omit must be a whole value/);
});

test('undefined variables and loops are ConfigErrors at the given location', () => {
  assert.equal(problemOf(() => resolve('{{ nope }}')), 'play.yml:3:5: undefined variable nope in {{ nope }}');
  assert.equal(problemOf(() => resolve('{{ user.nope }}')), 'play.yml:3:5: undefined variable user.nope in {{ user.nope }}');
  assert.match(problemOf(() => resolve('{{ loop_a }}')), /variable loop_a refers to itself through loop_a → loop_b/);
});

test('anything beyond the subset is an error naming the expression, never literal text', () => {
  const cases: [string, RegExp][] = [
    ['{{ port | int }}', /unsupported expression \{\{ port \| int \}\}: filter "int" is not supported/],
    ['{{ port + 1 }}', /unexpected "\+ 1"/],
    ["{{ lookup('env', 'HOME') }}", /it does not start with a variable name/],
    ['{{ x if y else z }}', /unexpected "if y else z"/],
    ['{% for h in hosts %}{{ h }}{% endfor %}', /Jinja statements \(\{% %\}\) are not supported/],
    ['{{ name.upper() }}', /function calls are not supported/],
    ['{{ unclosed', /unterminated \{\{/],
  ];
  for (const [text, re] of cases) assert.throws(() => parseTemplate(text), re, text);
  const problems = new Problems();
  checkTemplates({ a: ['ok {{ x }}', '{{ x | upper }}'], b: { c: '{{ 1 + 1 }}' } }, (p) => `f.yml:${p.join('.')}`, problems);
  assert.deepEqual(problems.list.map((p) => p.location), ['f.yml:a.1', 'f.yml:b.c']);
});

test('vault values that were not decrypted are named, not used', () => {
  const res = new Resolver({ secret: new VaultValue('$ANSIBLE_VAULT;1.1;AES256\n00', 'g.yml:4:9') });
  assert.equal(
    problemOf(() => res.resolveString('{{ secret }}', 'play.yml:9:1')),
    'play.yml:9:1: {{ secret }} uses a vault-encrypted value (g.yml:4:9); pass --vault-password-file to decrypt it',
  );
});

test('resolveValue resolves deeply and collects every problem', () => {
  const msg = problemOf(() => r().resolveValue({ a: '{{ x1 }}', b: ['{{ port }}', '{{ x2 }}'] }, (p) => `t.yml:${p.join('.')}`));
  assert.equal(msg, 't.yml:a: undefined variable x1 in {{ x1 }}\nt.yml:b.1: undefined variable x2 in {{ x2 }}');
  assert.deepEqual(r().resolveValue({ a: ['{{ port }}', 'u={{ user.name }}'] }, () => ''), { a: [443, 'u=deploy'] });
});

test('when: the simple forms', () => {
  const v = { env: 'prod', enabled: true, off: false, flag: 'yes', count: 0, nothing: null, n: 1 };
  assert.equal(evaluateWhen('enabled', v), true);
  assert.equal(evaluateWhen('not enabled', v), false);
  assert.equal(evaluateWhen("env == 'prod'", v), true);
  assert.equal(evaluateWhen('env != "prod"', v), false);
  assert.equal(evaluateWhen('flag | bool', v), true);
  assert.equal(evaluateWhen('not flag|bool', v), false);
  assert.equal(evaluateWhen('count', v), false);
  assert.equal(evaluateWhen('n == 1', v), true);
  assert.equal(evaluateWhen('nothing is defined', v), true);
  assert.equal(evaluateWhen('missing is defined', v), false);
  assert.equal(evaluateWhen('missing is not defined', v), true);
  assert.equal(evaluateWhen('missing is undefined', v), true);
  assert.equal(evaluateWhen(['enabled', "env == 'prod'"], v), true);
  assert.equal(evaluateWhen("enabled and env == 'staging'", v), false);
  assert.equal(evaluateWhen(false, v), false);
  assert.equal(evaluateWhen(undefined, v), true);
  assert.equal(evaluateWhen('greeting', { greeting: '{{ off }}', off: false }), false, 'a variable holding a template is resolved first');
});

test('when: unsupported forms and undefined variables are clear errors', () => {
  const v = { a: 1 };
  assert.match(problemOf(() => evaluateWhen('a or b', v, 'p.yml:4:13')), /^p\.yml:4:13: unsupported when: "a or b": unexpected "or b"/);
  assert.match(problemOf(() => evaluateWhen('a > 1', v)), /unsupported when: "a > 1"/);
  assert.match(problemOf(() => evaluateWhen("a in ['x']", v)), /unsupported when/);
  assert.match(problemOf(() => evaluateWhen('a is version("1", ">")', v)), /test "version" is not supported/);
  assert.match(problemOf(() => evaluateWhen('{{ a }}', v)), /must be a bare expression without \{\{ \}\}/);
  assert.equal(problemOf(() => evaluateWhen('b', v, 'p.yml:1:1')), 'p.yml:1:1: when: "b": b is undefined');
});

test('ansible bool filter', () => {
  for (const t of [true, 'yes', 'On', '1', 'TRUE', 1]) assert.equal(ansibleBool(t), true, String(t));
  for (const f of [false, 'no', 'off', '0', 'false', 0, 2, null, 'y']) assert.equal(ansibleBool(f), false, String(f));
});

test('tags: Ansible’s rules including always, never, tagged, untagged, all', () => {
  const tasks = [
    { name: 'plain', tags: [] as string[] },
    { name: 'fw', tags: ['firewall'] },
    { name: 'always', tags: ['always'] },
    { name: 'debug', tags: ['never', 'debug'] },
    { name: 'ca', tags: ['ca', 'tls'] },
  ];
  const run = (tags?: string[], skipTags?: string[]) => filterTasksByTags(tasks, { tags, skipTags }).map((t) => t.name);
  assert.deepEqual(run(), ['plain', 'fw', 'always', 'ca']);
  assert.deepEqual(run(['firewall']), ['fw', 'always']);
  assert.deepEqual(run(['debug']), ['always', 'debug']);
  assert.deepEqual(run(['tagged']), ['fw', 'always', 'ca']);
  assert.deepEqual(run(['untagged']), ['plain', 'always']);
  assert.deepEqual(run(undefined, ['tls']), ['plain', 'fw', 'always']);
  assert.deepEqual(run(undefined, ['always']), ['plain', 'fw', 'ca']);
  assert.deepEqual(run(undefined, ['all']), ['always']);
  assert.deepEqual(run(undefined, ['all', 'always']), []);
  assert.deepEqual(run(undefined, ['tagged']), ['plain']);
  assert.deepEqual(run(['all'], ['firewall']), ['plain', 'always', 'ca']);
  assert.equal(shouldRunTags(['never'], { tags: ['all'] }), false);
});
