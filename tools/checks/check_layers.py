#!/usr/bin/env python3
"""Checks that every #include in src/ and include/difftx/ follows the layer table that
CMake writes (build/<preset>/layers.txt, from src/CMakeLists.txt): a file of layer X may
include headers of X itself and of the layers X depends on, directly or transitively.

Usage: check_layers.py --table build/cpu/layers.txt --root <repository>
Prints one line per violation ("src/model/x.cpp:12 includes difftx/cuda/y.h: model may not
reach cuda") and exits 1 if there is any."""
import argparse
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
SOURCE_EXT = ('.h', '.hpp', '.cpp', '.cc', '.cu', '.cuh')


def read_table(path):
    layers = {}  # name -> (folder, [deps])
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            head, _, deps = line.partition(':')
            name, folder = head.split()
            layers[name] = (folder, deps.split())
    return layers


def closure(layers, name):
    seen, todo = {name}, [name]
    while todo:
        for dep in layers[todo.pop()][1]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def owners(layers, rel_folder):
    """Layers owning a path below src/ or include/difftx/ (longest folder prefix wins; a folder
    that only contains layer folders, such as cuda/ with sub-layers, is owned by all of them)."""
    best, best_len = set(), -1
    for name, (folder, _) in layers.items():
        if rel_folder == folder or rel_folder.startswith(folder + '/'):
            if len(folder) > best_len:
                best, best_len = {name}, len(folder)
            elif len(folder) == best_len:
                best.add(name)
    if best:
        return best
    return {name for name, (folder, _) in layers.items() if folder.startswith(rel_folder + '/')}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--table', required=True)
    ap.add_argument('--root', required=True)
    args = ap.parse_args()
    layers = read_table(args.table)
    root = os.path.abspath(args.root)
    problems, checked = [], 0
    for base in ('src', os.path.join('include', 'difftx')):
        for dirpath, _, files in os.walk(os.path.join(root, base)):
            for fname in sorted(files):
                if not fname.endswith(SOURCE_EXT):
                    continue
                path = os.path.join(dirpath, fname)
                rel = os.path.relpath(dirpath, os.path.join(root, base))
                mine = owners(layers, rel.replace(os.sep, '/'))
                if not mine:
                    continue
                allowed = set().union(*(closure(layers, m) for m in mine))
                with open(path, encoding='utf-8', errors='replace') as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        checked += 1
                        inc = m.group(1)
                        if inc.startswith('difftx/'):
                            target = os.path.dirname(inc[len('difftx/'):])
                        else:
                            full = os.path.normpath(os.path.join(dirpath, inc))
                            src_root = os.path.join(root, 'src')
                            if not full.startswith(src_root + os.sep):
                                continue
                            target = os.path.relpath(os.path.dirname(full), src_root)
                        theirs = owners(layers, target.replace(os.sep, '/'))
                        if theirs and not (theirs & allowed):
                            problems.append(
                                f"{os.path.relpath(path, root)}:{lineno} includes {inc}: "
                                f"{'/'.join(sorted(mine))} may not reach {'/'.join(sorted(theirs))}")
    for p in problems:
        print(p)
    print(f"check_layers: {checked} includes in {len(layers)} layers, {len(problems)} violations")
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
