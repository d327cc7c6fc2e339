#!/usr/bin/env python3
"""Extract expected-output cases from Go test files into JSON test data.

Reads Go test sources from a git checkout (no code is copied, only the (template, expected
output[, values]) cases) and writes JSON with provenance. Used for Sprig's *_test.go
(`runt(tpl, expect)`, `runtv(tpl, expect, vars)` with a simple map literal, and
`map[string]string{tpl: expect}` tables) and Helm's pkg/engine/funcs_test.go table.

usage: extract_go_tests.py sprig REPO_DIR COMMIT > sprig-cases.json
       extract_go_tests.py helm-funcs REPO_DIR COMMIT > helm-funcs-cases.json
"""
import ast
import json
import re
import subprocess
import sys

STR = r'(`[^`]*`|"(?:[^"\\\n]|\\.)*")'


def go_str(lit):
    if lit.startswith('`'):
        return lit[1:-1].replace('\r', '')
    return ast.literal_eval(lit)


def show(repo, commit, path):
    return subprocess.run(['git', '-C', repo, 'show', f'{commit}:{path}'],
                          check=True, capture_output=True, text=True).stdout


def test_name_at(src, pos):
    names = [m for m in re.finditer(r'^func (Test\w+)', src[:pos], re.M)]
    return names[-1].group(1) if names else ''


def simple_value(text):
    """A Go literal value in a vars map, as JSON, or raise."""
    text = text.strip()
    if re.fullmatch(STR, text):
        return go_str(text)
    if re.fullmatch(r'-?\d+', text):
        return int(text)
    if re.fullmatch(r'-?\d+\.\d*', text):
        return float(text)
    if text in ('true', 'false'):
        return text == 'true'
    if text == 'nil':
        return None
    m = re.fullmatch(r'\[\](?:string|interface\{\}|any|int)\{(.*)\}', text, re.S)
    if m:
        return [simple_value(x) for x in split_top(m.group(1))]
    m = re.fullmatch(r'map\[string\](?:string|interface\{\}|any|int)\{(.*)\}', text, re.S)
    if m:
        return simple_map(m.group(1))
    raise ValueError(text)


def split_top(body):
    parts, depth, cur, i = [], 0, '', 0
    while i < len(body):
        c = body[i]
        if c in '`"':
            m = re.match(STR, body[i:])
            if m:
                cur += m.group(0)
                i += len(m.group(0))
                continue
        if c in '{[(':
            depth += 1
        elif c in '}])':
            depth -= 1
        if c == ',' and depth == 0:
            if cur.strip():
                parts.append(cur.strip())
            cur = ''
        else:
            cur += c
        i += 1
    if cur.strip():
        parts.append(cur.strip())
    return parts


def simple_map(body):
    out = {}
    for entry in split_top(body):
        k, v = re.match(r'(' + STR[1:-1] + r')\s*:\s*(.*)', entry, re.S).groups()
        out[go_str(k)] = simple_value(v)
    return out


def sprig(repo, commit):
    files = subprocess.run(['git', '-C', repo, 'ls-tree', '--name-only', commit],
                           check=True, capture_output=True, text=True).stdout.split()
    cases, skipped = [], []
    for f in sorted(files):
        if not f.endswith('_test.go') or 'windows' in f:
            continue
        src = show(repo, commit, f)
        # Each test function on its own: variables do not carry over.
        starts = [m.start() for m in re.finditer(r'^func ', src, re.M)] + [len(src)]
        for a, b in zip(starts, starts[1:]):
            name = re.match(r'func (?:\([^)]*\)\s*)?(\w+)', src[a:b])
            cases_in(src[a:b], f, name.group(1) if name else '', cases, skipped)
    return cases, skipped


def cases_in(src, f, test, cases, skipped):
    tpl_var = {}
    tok = re.compile(
        r'(?P<assign>\b(\w+)\s*:?=\s*(?![ \t]|runt|map\[)(?P<rhs>[^\n]*)\n)'
        r'|(?P<call>\brunt(?:v)?\(\s*(\w+|' + STR + r')\s*,\s*(\w+|' + STR + r')\s*(?:,\s*(?P<vars>[^\n]*))?\))'
        r'|(?P<table>map\[string\]string\{\s*\n(?P<body>(?:\s*' + STR + r'\s*:\s*' + STR + r',?\s*(?://[^\n]*)?\n)+)\s*\})')
    for m in tok.finditer(src):
        if m.group('assign'):
            am = re.match(r'\b(\w+)\s*:?=\s*(.*)', m.group('assign'))
            rhs = am.group(2).strip()
            if re.fullmatch(STR, rhs):
                tpl_var[am.group(1)] = go_str(rhs)
            else:
                # Computed in Go: not a case we can carry over.
                tpl_var.pop(am.group(1), None)
        elif m.group('call'):
            cm = re.match(r'runt(v?)\(\s*(\w+|' + STR[1:-1] + r')\s*,\s*(\w+|' + STR[1:-1] + r')', m.group('call'))
            a, b = cm.group(2), cm.group(3)
            try:
                tpl = go_str(a) if a[0] in '`"' else tpl_var[a]
                expect = go_str(b) if b[0] in '`"' else tpl_var[b]
            except KeyError:
                skipped.append({'file': f, 'test': test, 'why': 'template or expected value computed in Go'})
                continue
            case = {'file': f, 'test': test, 'template': tpl, 'expect': expect}
            if cm.group(1) == 'v':
                vars_text = (m.group('vars') or '').rstrip().rstrip(';')
                try:
                    case['vars'] = simple_value(vars_text[:-1] if vars_text.endswith(')') else vars_text)
                except Exception:
                    skipped.append({'file': f, 'test': test, 'why': 'values are Go values: ' + vars_text[:60]})
                    continue
            cases.append(case)
        elif m.group('table'):
            for em in re.finditer(r'(' + STR[1:-1] + r')\s*:\s*(' + STR[1:-1] + r')', m.group('body')):
                cases.append({'file': f, 'test': test, 'template': go_str(em.group(1)),
                              'expect': go_str(em.group(2))})


def helm_funcs(repo, commit):
    path = 'pkg/engine/funcs_test.go'
    src = show(repo, commit, path)
    cases, skipped = [], []
    for m in re.finditer(r'\{\s*tpl:\s*(' + STR[1:-1] + r')\s*,\s*expect:\s*(' + STR[1:-1] + r')\s*,\s*vars:\s*(.*?),\s*\n\s*\}', src, re.S):
        test = test_name_at(src, m.start())
        vars_text = m.group(3).strip().rstrip(',')
        try:
            vars_ = simple_value(vars_text) if vars_text not in ('nil', '') else None
        except Exception:
            vars_ = None
            if 'map' in vars_text or '{' in vars_text:
                skipped.append({'file': path, 'test': test, 'template': go_str(m.group(1)),
                                'why': 'values are Go values: ' + ' '.join(vars_text.split())[:80]})
                continue
        cases.append({'file': path, 'test': test, 'template': go_str(m.group(1)),
                      'expect': go_str(m.group(2)), 'vars': vars_})
    return cases, skipped


if __name__ == '__main__':
    kind, repo, commit = sys.argv[1:4]
    url = {'sprig': 'github.com/Masterminds/sprig', 'helm-funcs': 'github.com/helm/helm'}[kind]
    cases, skipped = (sprig if kind == 'sprig' else helm_funcs)(repo, commit)
    json.dump({'provenance': {'repository': url, 'commit': commit,
                              'note': 'cases extracted by extract_go_tests.py; expected outputs as written in the upstream tests'},
               'cases': cases, 'not_extracted': skipped}, sys.stdout, indent=1, ensure_ascii=False)
    print()
