#!/usr/bin/env python3
"""Regenerates README.md's "Subcommands and flags" blocks from the built binary's --help."""
import re, subprocess, sys

binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/mmnotif-trace"
readme = open("README.md").read()
top = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
subs = re.findall(r"^  ([a-z-]+)\s", top.split("Commands:")[1].split("Options:")[0], re.M)
blocks = []
for sub in [""] + [s for s in subs if s != "help"]:
    args = [binary] + ([sub] if sub else []) + ["--help"]
    text = subprocess.run(args, capture_output=True, text=True, check=True).stdout.rstrip()
    blocks.append(f"```text\n$ mmnotif-trace {sub} --help\n{text}\n```\n")
start = readme.index("```text\n$ mmnotif-trace  --help")
end = readme.index("## Layout")
open("README.md", "w").write(readme[:start] + "\n".join(blocks) + "\n" + readme[end:])
