#!/usr/bin/env bash
# Extracts the communes of France, their départements and régions, from
# INSEE's code officiel géographique (COG) as Etalab publishes it in the npm
# package @etalab/decoupage-administratif, into crates/ami-core/data/cog/.
# ami-core embeds these files (include_str!): nothing is fetched at run time.
#
#   scripts/extract-communes.sh        # the pinned version
#   COMMUNES_VERSION=5.3.0 COMMUNES_SHA256=<sha256 of its tarball> scripts/extract-communes.sh
#
# The tarball is taken with `npm pack` (nothing is installed), checked
# against the SHA-256 pinned here, and read with node's JSON.parse. Only the
# communes actuelles are kept (not the communes déléguées or associées, nor
# Paris, Lyon and Marseille's arrondissements municipaux); the codes they
# replaced are kept apart, with the commune that took each over.
#
# The output is the same, byte for byte, for the same version: the date of
# extraction in SOURCE.md is kept as long as the version and tarball are.
set -euo pipefail

PACKAGE="@etalab/decoupage-administratif"
PINNED_VERSION="6.0.0"
PINNED_SHA256="c189ffd5b33fe40c2f19e1a923ce557f190622f39228745d3195d746dfe00c4a"

VERSION="${COMMUNES_VERSION:-$PINNED_VERSION}"
if [ "$VERSION" = "$PINNED_VERSION" ]; then
  EXPECTED_SHA256="${COMMUNES_SHA256:-$PINNED_SHA256}"
else
  EXPECTED_SHA256="${COMMUNES_SHA256:-}"
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/crates/ami-core/data/cog"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

(cd "$WORK" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
TARBALL="$WORK/etalab-decoupage-administratif-$VERSION.tgz"
SHA256="$(sha256sum "$TARBALL" | cut -d' ' -f1)"
if [ -z "$EXPECTED_SHA256" ]; then
  echo "No SHA-256 pinned for $PACKAGE $VERSION; its tarball's is $SHA256." >&2
  echo "Check it, then run again with COMMUNES_SHA256=$SHA256." >&2
  exit 1
fi
if [ "$SHA256" != "$EXPECTED_SHA256" ]; then
  echo "$PACKAGE $VERSION: tarball SHA-256 $SHA256, expected $EXPECTED_SHA256." >&2
  exit 1
fi
tar xzf "$TARBALL" -C "$WORK"

# The package's README gives the COG year of each version in a table row
# such as "| 2026  | 6.0.0 | ...".
COG_YEAR="$(grep -E "^\| *[0-9]{4} *\| *${VERSION//./\\.} *\|" "$WORK/package/README.md" |
  sed -E 's/^\| *([0-9]{4}).*/\1/' | head -n1 || true)"
COG_YEAR="${COMMUNES_COG_YEAR:-$COG_YEAR}"
if [ -z "$COG_YEAR" ]; then
  echo "The README of $PACKAGE $VERSION names no COG year; set COMMUNES_COG_YEAR." >&2
  exit 1
fi
PUBLISHED="$(npm view "$PACKAGE" time --json |
  node -e 'const t = JSON.parse(require("fs").readFileSync(0, "utf8")); process.stdout.write((t[process.argv[1]] || "").slice(0, 10))' "$VERSION")"

# The date of extraction stays as it was while the version and tarball do.
EXTRACTED="$(date -u +%Y-%m-%d)"
if [ -f "$DEST/SOURCE.md" ] && grep -qF "$SHA256" "$DEST/SOURCE.md"; then
  EXTRACTED="$(sed -nE 's/^- Extracted on: ([0-9-]+).*/\1/p' "$DEST/SOURCE.md")"
fi

mkdir -p "$DEST"
COUNTS="$(node - "$WORK/package/data" "$DEST" <<'EOF'
const fs = require("fs");
const path = require("path");
const [dataDir, dest] = process.argv.slice(2);
const read = (name) => JSON.parse(fs.readFileSync(path.join(dataDir, name), "utf8"));
const byCode = (a, b) => (a.code < b.code ? -1 : a.code > b.code ? 1 : 0);
// Every field is written between tabs: none may hold a tab or a line break,
// and names are kept in Unicode form C, as the package gives them.
const field = (value) => {
  if (typeof value !== "string" || value === "" || /[\t\r\n]/.test(value)) {
    throw new Error(`unexpected field ${JSON.stringify(value)}`);
  }
  if (value !== value.normalize("NFC")) throw new Error(`not NFC: ${value}`);
  return value;
};
const write = (name, header, rows) => {
  const lines = [header, ...rows.map((r) => r.map(field).join("\t"))];
  fs.writeFileSync(path.join(dest, name), lines.join("\n") + "\n");
};

const regions = read("regions.json").sort(byCode);
const departements = read("departements.json").sort(byCode);
const all = read("communes.json");
const communes = all.filter((c) => c.type === "commune-actuelle").sort(byCode);

const regionCodes = new Set(regions.map((r) => r.code));
const departementCodes = new Set(departements.map((d) => d.code));
const communeCodes = new Set();
for (const d of departements) {
  if (!regionCodes.has(d.region)) throw new Error(`département ${d.code}: no région ${d.region}`);
}
for (const c of communes) {
  if (communeCodes.has(c.code)) throw new Error(`commune ${c.code} twice`);
  communeCodes.add(c.code);
  if (!departementCodes.has(c.departement)) throw new Error(`commune ${c.code}: no département`);
  if (!regionCodes.has(c.region)) throw new Error(`commune ${c.code}: no région`);
}

// The codes communes actuelles replaced (merged into a commune nouvelle,
// or renumbered, as Corsica's 20xxx became 2A/2B), each with its successor.
const former = new Map();
for (const c of communes) {
  for (const old of c.anciensCodes || []) {
    if (communeCodes.has(old)) throw new Error(`former code ${old} is a current one`);
    if (former.has(old) && former.get(old) !== c.code) throw new Error(`former code ${old} twice`);
    former.set(old, c.code);
  }
}
const formerRows = [...former].map(([code, now]) => ({ code, now })).sort(byCode);

write("regions.tsv", "code\tnom\tzone", regions.map((r) => [r.code, r.nom, r.zone]));
write("departements.tsv", "code\tnom\tregion",
  departements.map((d) => [d.code, d.nom, d.region]));
write("communes.tsv", "code\tnom\tdepartement\tregion",
  communes.map((c) => [c.code, c.nom, c.departement, c.region]));
write("anciens-codes.tsv", "code\tcommune", formerRows.map((f) => [f.code, f.now]));

// The counts SOURCE.md states, on one line.
const types = {};
for (const c of all) types[c.type] = (types[c.type] || 0) + 1;
const zones = {};
for (const c of communes) zones[c.zone] = (zones[c.zone] || 0) + 1;
console.log([communes.length, zones.metro, zones.drom, zones.com, departements.length,
  regions.length, formerRows.length, types["commune-deleguee"], types["commune-associee"],
  types["arrondissement-municipal"]].join(" "));
EOF
)"
read -r N_COMMUNES N_METRO N_DROM N_COM N_DEP N_REG N_FORMER N_DELEGUEES N_ASSOCIEES N_ARR <<<"$COUNTS"

# What ami-core reads of the source (the message of an unknown code names
# the COG year).
printf 'package\t%s\nversion\t%s\ncog\t%s\n' "$PACKAGE" "$VERSION" "$COG_YEAR" > "$DEST/source.tsv"

cat > "$DEST/SOURCE.md" <<EOF
# Communes, départements and régions of France

Extracted by \`scripts/extract-communes.sh\` from INSEE's code officiel
géographique as published by Etalab (DINUM) in the npm package
[\`$PACKAGE\`](https://www.npmjs.com/package/$PACKAGE).

- Package: \`$PACKAGE\` $VERSION (published $PUBLISHED)
- Tarball SHA-256: \`$SHA256\`
- COG: $COG_YEAR (the year the package's README gives for this version)
- Extracted on: $EXTRACTED
- Licence of the data: Licence Ouverte / Open Licence (Etalab 2.0),
  https://www.etalab.gouv.fr/licence-ouverte-open-licence (the package's
  README; its code, not copied here, is under the MIT licence). Source:
  INSEE, code officiel géographique $COG_YEAR, via Etalab.

Files, UTF-8 (Unicode form C), one record a line, fields separated by tabs,
a header line first, sorted by code:

- \`communes.tsv\` (code, nom, departement, region): the $N_COMMUNES communes
  actuelles ($N_METRO in metropolitan France, $N_DROM in the DROM, $N_COM in the
  collectivités d'outre-mer, whose "département" and "région" are the
  collectivité's own code, as the package gives them). Left out: the
  $N_DELEGUEES communes déléguées, $N_ASSOCIEES communes associées and $N_ARR
  arrondissements municipaux of Paris, Lyon and Marseille.
- \`departements.tsv\` (code, nom, region): $N_DEP.
- \`regions.tsv\` (code, nom, zone: metro, drom or com): $N_REG.
- \`anciens-codes.tsv\` (code, commune): $N_FORMER codes that are no longer
  a commune actuelle's (communes merged into a commune nouvelle, where some
  live on as communes déléguées, or renumbered, as Corsica's 20xxx), each
  with the code of the commune actuelle that took it over.
- \`source.tsv\`: the package, its version and the COG year, for the code.
EOF

echo "$PACKAGE $VERSION (COG $COG_YEAR, sha256 $SHA256) extracted into $DEST:"
(cd "$DEST" && wc -c ./*.tsv SOURCE.md)
