"""py-stdlib.py SCRIPT...: the standard-library files that SCRIPTs need, one path a line.

Run by the Python that goes into the emulated host (build-python.sh). The emulated host carries
only these files, not the whole library (~50 MB). The closure is found by importing, not guessed:
SCRIPTs' import statements are read (following the modules that sit beside a script, such as
vmtest.py), then a fresh interpreter imports those names and prints the file of every module it
loaded, its start-up (site, encodings) included. A module a script imports only while it runs
is found too, since the statement is read wherever it stands; one imported by the standard
library itself only at run time is not, and fails in the emulated host as ModuleNotFoundError,
naming it.
"""
import ast
import os
import subprocess
import sys


def imported_names(scripts):
    """The absolute imports of scripts and of the local modules they import, local ones left out."""
    names, todo, seen = set(), list(scripts), set()
    while todo:
        script = todo.pop()
        here = os.path.dirname(os.path.abspath(script))
        with open(script, encoding="utf-8") as f:
            tree = ast.parse(f.read(), script)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [node.module]
            else:
                continue
            for mod in mods:
                # a local module: beside this script or beside one of the scripts given
                dirs = [here] + [os.path.dirname(os.path.abspath(s)) for s in scripts]
                paths = [os.path.join(d, mod.split(".")[0] + ".py") for d in dirs]
                local = [p for p in paths if os.path.exists(p)]
                if not local:
                    names.add(mod)
                elif local[0] not in seen:
                    seen.add(local[0])
                    todo.append(local[0])
    return sorted(names)


# The child, isolated (-I: no user site-packages, no PYTHON* variables, no current directory on
# its path): what it loads beyond the start-up is what the imports pull in. Frozen modules (os,
# site, ...) need no file, but os.py is the landmark by which the interpreter finds its library:
# printing them costs a few KB.
CHILD = """
import os, sys
lib = os.path.dirname(os.__file__)
for mod in list(sys.modules.values()):
    f = getattr(mod, "__file__", None)
    if f and f.startswith(lib + "/") and "-packages/" not in f:
        print(f)
"""

if __name__ == "__main__":
    names = imported_names(sys.argv[1:])
    code = "".join(f"import {n}\n" for n in names) + CHILD
    files = subprocess.run([sys.executable, "-I", "-c", code], check=True,
                           stdout=subprocess.PIPE, text=True).stdout.split()
    print("\n".join(sorted(set(files))))
