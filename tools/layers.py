#!/usr/bin/env python3
"""Checks that dependencies between the gateway's files point one way.

    python3 tools/layers.py [BUILD_DIR]

1. Include cycles: the `#include "..."` lines of src/**/*.[ch] and handlers/*.[ch], each resolved against the including
   file's folder, then src/, then the repository root (the build's include path). Every elementary cycle is printed.
2. With BUILD_DIR (a configured and built tree): reference cycles between object files, a -> b when a.o uses a symbol
   b.o defines (nm), i.e. the call loops the include graph cannot show.
3. Folder edges: no two folders (each src/LAYER/, handlers/) may depend on each other both ways. src/main.c is the program, built outside the
   pgw_core library; it is the one file that names the handlers, to register them.
Exits 1 when a cycle is found."""
import glob, os, re, subprocess, sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))


def cycles(graph):
    found = []
    for start in sorted(graph):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    found.append(path + [start])
                elif nxt > start and nxt not in path:
                    stack.append((nxt, path + [nxt]))
    return found


def folder(f):
    if f == 'src/main.c':
        return 'program (src/main.c)'
    parts = f.split('/')
    return '/'.join(parts[:2]) if parts[0] == 'src' and len(parts) > 2 else parts[0]


def report(title, graph):
    found = cycles(graph)
    print(f'{title}: {len(found)} cycle(s)')
    for c in found:
        print('  ' + ' -> '.join(c))
    edges = {}
    for a, out in graph.items():
        for b in out:
            if folder(a) != folder(b):
                edges.setdefault((folder(a), folder(b)), []).append(f'{a} -> {b}')
    for (a, b), l in sorted(edges.items()):
        print(f'  {a} -> {b}: {len(l)}' + (' (' + ', '.join(sorted(l)) + ')' if len(l) <= 3 else ''))
    both = sorted({tuple(sorted(k)) for k in edges if (k[1], k[0]) in edges})
    for a, b in both:
        print(f'  folders depending on each other: {a} <-> {b}')
    return len(found) + len(both)


files = sorted(os.path.relpath(p, ROOT) for d in ('src', 'handlers') for p in glob.glob(os.path.join(ROOT, d, '**', '*.[ch]'), recursive=True))
includes = {}
for f in files:
    out = set()
    for name in re.findall(r'^\s*#\s*include\s+"([^"]+)"', open(os.path.join(ROOT, f)).read(), re.M):
        for base in (os.path.dirname(f), 'src', ''):
            p = os.path.normpath(os.path.join(base, name))
            if p in files:
                out.add(p)
                break
    includes[f] = out
bad = report(f'include graph ({len(files)} files)', includes)

if len(sys.argv) > 1:
    build = sys.argv[1]
    objs = glob.glob(os.path.join(build, 'CMakeFiles/pgw_core.dir/**/*.o'), recursive=True) + \
        glob.glob(os.path.join(build, 'CMakeFiles/poe-gateway.dir/**/*.o'), recursive=True)
    defined, used = {}, {}
    for o in objs:
        name = os.path.relpath(o, build).split('.dir/', 1)[1][:-2]
        used[name] = set()
        for line in subprocess.run(['nm', o], capture_output=True, text=True, check=True).stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == 'U':
                used[name].add(parts[1])
            elif len(parts) == 3 and parts[1] in 'TDBRVW':
                defined[parts[2]] = name
    refs = {n: {defined[s] for s in u if s in defined and defined[s] != n} for n, u in used.items()}
    bad += report(f'reference graph ({len(objs)} objects)', refs)
sys.exit(1 if bad else 0)
