#!/usr/bin/env python3
"""Generate a FastAPI project from the skill's layers, as `assets/scaffold/manifest.json` says.

Standard library only (Python 3.10+), so an agent can run it before any project exists:

    python scaffold_fastapi.py --name my-agent-api --db postgres --auth jwt --out ./my-agent-api

How a project is composed (one `compose()` for every tier):

- The manifest lists each option (`--db`, `--auth`, ...): its values, its default, the tiers it
  applies to and the layers (folders of `assets/scaffold/layers/`) each value mounts, plus
  implications (`--agent none` means `--queue none`). An option given for a tier it does not
  apply to, or contradicting an implication, is a usage error (exit 2).
- A tier mounts its own layers at the output root, then its option layers. Tier 2 also mounts
  a Tier 1 project as `services/agent-service/` and the `python-service` layer (pyproject,
  alembic.ini, migrations) once per service it lists; Tier 3 extends Tier 2. Later layers
  replace earlier files with the same output path.
- Layers are real projects named `forge-app` (package `forge_app`); the service layer is named
  `forge-service` (`forge_service`). Rendering renames those tokens in paths and text.

Control files are never copied; they act on the folder they sit in, at any depth:

- `_deps.txt`: PEP 508 requirements merged into that folder's `pyproject.toml`
  (`[project] dependencies`; lines after a `[dev]` line go to the `dev` extra);
- `_env.txt`: lines appended to that folder's `.env.example` (a key it sets replaces the old line);
- `_remove.txt`: output paths below that folder (files, or folders ending in `/`) to drop.

Conditional lines, so deployment files follow the options and templates stay valid YAML/TOML:

    # forge:if db=postgres queue!=none      (every term must hold; `a=x|y` means x or y)
    ...lines kept only when the condition holds...
    # forge:end
    some: line  # forge:if auth=jwt         (a single line, the marker comment removed)

In Markdown the block markers are HTML comments on lines of their own:
`<!-- forge:if auth=jwt -->` ... `<!-- forge:end -->`. Blocks nest. A condition may only name
options that apply where the file is mounted (`tier` always). Marker lines are removed from
the output, and so are snippet region markers (`--8<-- [start:NAME]`, `--8<-- [end:NAME]`),
which the skill's references use for excerpts.

The layers are read from `assets/scaffold/layers/` when it exists, otherwise from
`assets/scaffold/layers.bundle.txt`: the same files in one plain-text file, which
`skillcheck pack --target claude-ai` ships instead of the folder (claude.ai accepts at most
200 files). Its format: a first line `skillcheck-bundle 1`, `#` comment lines, then for each
file a line `=== <mode> <bytes> <path>` followed by exactly <bytes> bytes and a line break.

The output is written to a temporary folder next to the target and moved into place only when
complete, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import json
import keyword
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SKILL_DIR = Path(__file__).resolve().parent.parent
SCAFFOLD_DIR = SKILL_DIR / "assets" / "scaffold"
LAYERS_DIR = SCAFFOLD_DIR / "layers"
LAYERS_BUNDLE = SCAFFOLD_DIR / "layers.bundle.txt"
TEMPLATES_DIR = SKILL_DIR / "assets" / "templates"
MANIFEST_PATH = SCAFFOLD_DIR / "manifest.json"

CONTROL_FILES = {"_deps.txt", "_env.txt", "_remove.txt"}
SKIPPED_NAMES = {"__pycache__", ".ruff_cache", ".pytest_cache", ".mypy_cache"}
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
REQUIREMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_,.-]+\])?\s*[<>=!~;]")
IF_RE = re.compile(r"^\s*(?:#|<!--)\s*forge:if\s+(?P<cond>[^-\s](?:.*?[^-\s])?)\s*(?:-->)?\s*$")
END_RE = re.compile(r"^\s*(?:#|<!--)\s*forge:end\s*(?:-->)?\s*$")
INLINE_IF_RE = re.compile(r"\s*#\s*forge:if\s+(?P<cond>\S.*?)\s*$")
SNIPPET_MARKER_RE = re.compile(r"--8<-- \[(?:start|end):[^\]]*\]")
BUNDLE_MAGIC = b"skillcheck-bundle 1\n"
BUNDLE_HEADER_RE = re.compile(rb"=== (?:644|755) (?P<size>[0-9]+) (?P<path>[^\n]+)")


class ScaffoldError(Exception):
    """A problem the user can fix; printed without a traceback."""


Tokens = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Mount:
    """One layer placed at `target` (a folder of the output), renamed with `tokens`, its
    conditional lines evaluated against `context` (the options that apply there)."""

    layer: str
    target: str
    tokens: Tokens
    context: Mapping[str, str]


@dataclass(frozen=True)
class LayerFile:
    """One file of a layer: its path inside the layer, its bytes, and where it was read from
    (for messages)."""

    relative: str
    data: bytes
    where: str

    @property
    def name(self) -> str:
        return self.relative.rpartition("/")[2]

    def text(self) -> str:
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            raise ScaffoldError(f"{self.where}: not UTF-8 text") from None


@dataclass
class Composition:
    mounts: list[Mount] = field(default_factory=list)
    # output path -> (source file, tokens, context): skill templates copied in whole.
    extra_files: dict[str, tuple[LayerFile, Tokens, Mapping[str, str]]] = field(
        default_factory=dict
    )
    removals: list[str] = field(default_factory=list)
    descriptions: dict[str, str] = field(default_factory=dict)  # pyproject path -> text
    all_tokens: set[str] = field(default_factory=set)


@dataclass
class Plan:
    """Everything to write, computed before anything touches the disk."""

    files: dict[str, bytes] = field(default_factory=dict)
    overlays: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScaffoldError(f"{path}: missing; reinstall the skill") from None
    except json.JSONDecodeError as error:
        raise ScaffoldError(f"{path}:{error.lineno}: invalid JSON: {error.msg}") from None
    for flag, spec in manifest["options"].items():
        if spec["default"] not in spec["values"]:
            raise ScaffoldError(f"{path}: --{flag} default {spec['default']!r} is not a value")
    return manifest


def value_tiers(manifest: Mapping[str, Any], flag: str, value: str) -> list[str]:
    spec = manifest["options"][flag]
    return list(spec["values"][value].get("tiers", spec["tiers"]))


def package_name(project: str) -> str:
    return project.lower().replace("-", "_")


def validate_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise argparse.ArgumentTypeError(
            f"invalid project name {name!r}: use a letter first, then letters, digits, '-' or '_' "
            "(at most 64 characters)"
        )
    package = package_name(name)
    if keyword.iskeyword(package) or package in sys.stdlib_module_names:
        raise argparse.ArgumentTypeError(
            f"project name {name!r} gives the package {package!r}, which shadows a Python "
            "keyword or standard library module: choose another name"
        )
    return name


def build_parser(manifest: Mapping[str, Any]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scaffold_fastapi.py",
        description="Generate a production FastAPI system (tier 1, 2 or 3).",
    )
    tiers = manifest["tiers"]
    parser.add_argument(
        "--tier",
        choices=tuple(tiers),
        default="1",
        help="; ".join(f"{tier}: {spec['description']}" for tier, spec in tiers.items()),
    )
    parser.add_argument(
        "--name", type=validate_name, default="forge-app", help="project name (default forge-app)"
    )
    parser.add_argument("--out", type=Path, help="output folder (default ./<name>)")
    for flag, spec in manifest["options"].items():
        parser.add_argument(
            f"--{flag}",
            choices=tuple(spec["values"]),
            default=None,
            help=f"{spec['help']}; tier {', '.join(spec['tiers'])}; default {spec['default']}",
        )
    parser.add_argument("--dry-run", action="store_true", help="list the files, write nothing")
    parser.add_argument("--force", action="store_true", help="write into a non-empty folder")
    return parser


def resolve_options(
    parser: argparse.ArgumentParser, manifest: Mapping[str, Any], args: argparse.Namespace
) -> dict[str, str]:
    """The value of every option that applies to the tier; usage errors exit 2."""
    tier: str = args.tier
    chosen: dict[str, str] = {}
    for flag, spec in manifest["options"].items():
        given: str | None = getattr(args, flag)
        if tier not in spec["tiers"]:
            if given is not None:
                parser.error(
                    f"--{flag} applies to --tier {' or '.join(spec['tiers'])} only, "
                    f"not --tier {tier}: leave it out"
                )
            continue
        value = spec["default"] if given is None else given
        if tier not in value_tiers(manifest, flag, value):
            parser.error(
                f"--{flag} {value} applies to --tier "
                f"{' or '.join(value_tiers(manifest, flag, value))} only, not --tier {tier}"
            )
        chosen[flag] = value
    for rule in manifest["implications"]:
        if all(chosen.get(flag) == value for flag, value in rule["if"].items()):
            for flag, value in rule["then"].items():
                given = getattr(args, flag)
                if given is not None and given != value:
                    condition = " ".join(f"--{k} {v}" for k, v in rule["if"].items())
                    parser.error(
                        f"--{flag} {given} contradicts {condition} ({rule['why']}): "
                        f"use --{flag} {value} or leave --{flag} out"
                    )
                if flag in chosen:
                    chosen[flag] = value
    return chosen


def compose(
    manifest: Mapping[str, Any],
    tier: str,
    options: Mapping[str, str],
    name: str,
    target: str = "",
    project_tier: str | None = None,
) -> Composition:
    """The layers of `tier` for project `name` placed at `target`, in mounting order.
    `project_tier`: the tier being generated when `tier` is one it extends; conditions
    on `tier` see the project's (Tier 2's README, mounted in Tier 3, describes Tier 3)."""
    spec = manifest["tiers"][tier]
    template = manifest["template"]
    package = package_name(name)
    tokens: Tokens = ((template["package"], package), (template["project"], name))
    context = {"tier": project_tier or tier, **options}
    comp = (
        compose(manifest, spec["extends"], options, name, target, context["tier"])
        if "extends" in spec
        else Composition()
    )
    comp.all_tokens.update((template["package"], template["project"]))

    def place(relative: str) -> str:
        return f"{target}/{relative}" if target else relative

    for layer in spec["layers"]:
        comp.mounts.append(Mount(layer, target, tokens, context))
    for flag in spec.get("options", ()):
        for layer in manifest["options"][flag]["values"][options[flag]]["layers"]:
            comp.mounts.append(Mount(layer, target, tokens, context))
    projects: dict[str, Any] = spec.get("projects", {})
    for folder, project in projects.items():
        project_options = {
            flag: project["options"].get(
                flag, options.get(flag, manifest["options"][flag]["default"])
            )
            for flag in manifest["tiers"][project["tier"]].get("options", ())
        }
        sub = compose(manifest, project["tier"], project_options, project["name"], place(folder))
        comp.mounts += sub.mounts
        comp.extra_files.update(sub.extra_files)
        comp.removals += sub.removals + [
            place(f"{folder}/{path}") for path in project.get("remove", ())
        ]
        comp.all_tokens |= sub.all_tokens
    for service, service_spec in spec.get("services", {}).items():
        service_tokens: Tokens = (
            (template["service_package"], package_name(service)),
            (template["service"], service),
            *tokens,
        )
        comp.all_tokens.update((template["service_package"], template["service"]))
        for layer in manifest["service_layers"]:
            comp.mounts.append(Mount(layer, place(f"services/{service}"), service_tokens, context))
        comp.descriptions[place(f"services/{service}/pyproject.toml")] = service_spec["description"]
    for relative, source in spec.get("templates", {}).items():
        path = TEMPLATES_DIR / source
        template_file = LayerFile(source, path.read_bytes(), str(path))
        comp.extra_files[place(relative)] = (template_file, tokens, context)
    return comp


def skipped(relative: str) -> bool:
    """Caches a test run may leave in a layer folder; never part of a layer."""
    parts = relative.split("/")
    return bool(SKIPPED_NAMES.intersection(parts[:-1])) or parts[-1].endswith((".pyc", ".pyo"))


class Layers:
    """The layers' files, from the folder or, when the skill was packed without it, from the
    bundle file; both give the same files in the same (path) order."""

    def __init__(self, folder: Path = LAYERS_DIR, bundle: Path = LAYERS_BUNDLE) -> None:
        self.folder = folder
        self.bundle = bundle
        self._bundled: dict[str, list[LayerFile]] | None = None

    def files(self, layer: str) -> list[LayerFile] | None:
        """The files of `layer` sorted by path; None when the layer has none."""
        if self.folder.is_dir():
            root = self.folder / layer
            if not root.is_dir():
                return None
            found = []
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = [d for d in dirnames if d not in SKIPPED_NAMES]
                for filename in filenames:
                    path = Path(dirpath) / filename
                    relative = path.relative_to(root).as_posix()
                    if not skipped(relative):
                        found.append(LayerFile(relative, path.read_bytes(), str(path)))
            return sorted(found, key=lambda f: f.relative) or None
        if self._bundled is None:
            self._bundled = read_bundle(self.bundle)
        return self._bundled.get(layer)


def read_bundle(path: Path) -> dict[str, list[LayerFile]]:
    """The files of a `skillcheck-bundle 1` file, by layer (their first path component)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ScaffoldError(
            f"neither {LAYERS_DIR} nor {path} exists: reinstall the skill"
        ) from None
    if not data.startswith(BUNDLE_MAGIC):
        raise ScaffoldError(f"{path}:1: not a bundle (expected {BUNDLE_MAGIC.decode().strip()!r})")
    layers: dict[str, list[LayerFile]] = {}
    pos, line = len(BUNDLE_MAGIC), 2
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end == -1 else end
        header = data[pos:end]
        if header.startswith(b"#") and not layers:
            pos, line = end + 1, line + 1
            continue
        match = BUNDLE_HEADER_RE.fullmatch(header)
        if match is None:
            raise ScaffoldError(f"{path}:{line}: expected '=== <mode> <bytes> <path>'")
        size, relative = int(match["size"]), match["path"].decode("utf-8")
        content = data[end + 1 : end + 1 + size]
        if len(content) != size or data[end + 1 + size : end + 2 + size] != b"\n":
            raise ScaffoldError(f"{path}:{line}: {relative} is truncated; reinstall the skill")
        layer, _, inside = relative.partition("/")
        if inside and not skipped(inside):
            where = f"{path}:{line} ({relative})"
            layers.setdefault(layer, []).append(LayerFile(inside, content, where))
        pos, line = end + 2 + size, line + 2 + content.count(b"\n")
    for files in layers.values():
        files.sort(key=lambda f: f.relative)
    return layers


def rename(text: str, tokens: Tokens) -> str:
    for old, new in tokens:
        text = text.replace(old, new)
    return text


def holds(
    condition: str, context: Mapping[str, str], manifest: Mapping[str, Any], where: str
) -> bool:
    """`flag=a|b flag2!=c`: every term must hold."""
    result = True
    for term in condition.split():
        match = re.fullmatch(r"([a-z]+)(!?=)([A-Za-z0-9_|-]+)", term)
        if match is None:
            raise ScaffoldError(f"{where}: bad condition term {term!r}: write flag=value|value")
        flag, operator, values = match.groups()
        wanted = set(values.split("|"))
        known = (
            set(manifest["tiers"])
            if flag == "tier"
            else set(manifest["options"].get(flag, {}).get("values", ()))
        )
        if flag not in context or not wanted <= known:
            raise ScaffoldError(
                f"{where}: condition {term!r} names an option or value that does not apply "
                f"here (options here: {', '.join(sorted(context))})"
            )
        result = result and ((context[flag] in wanted) == (operator == "="))
    return result


def apply_conditions(
    text: str, context: Mapping[str, str], manifest: Mapping[str, Any], source: str
) -> str:
    """Evaluates `# forge:if` blocks and lines; drops snippet region marker lines."""
    if "forge:" not in text and "--8<--" not in text:
        return text
    kept: list[str] = []
    stack: list[tuple[int, bool]] = []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        where = f"{source}:{number}"
        if SNIPPET_MARKER_RE.search(line):
            continue
        if match := IF_RE.match(line):
            outer = all(keep for _, keep in stack)
            stack.append((number, outer and holds(match["cond"], context, manifest, where)))
            continue
        if END_RE.match(line):
            if not stack:
                raise ScaffoldError(f"{where}: '# forge:end' without '# forge:if'")
            stack.pop()
            continue
        if "<!--" in line and ("forge:if" in line or "forge:end" in line):
            raise ScaffoldError(
                f"{where}: malformed marker {line.strip()!r}: write <!-- forge:if FLAG=VALUE --> "
                "or <!-- forge:end --> alone on its line"
            )
        if not all(keep for _, keep in stack):
            continue
        if match := INLINE_IF_RE.search(line):
            if not holds(match["cond"], context, manifest, where):
                continue
            ending = "\n" if line.endswith("\n") else ""
            line = line[: match.start()] + ending
        kept.append(line)
    if stack:
        raise ScaffoldError(f"{source}:{stack[-1][0]}: '# forge:if' without '# forge:end'")
    return "".join(kept)


def read_lines(text: str) -> list[str]:
    """Non-empty lines of a control file, with `#` comments dropped."""
    lines = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def merge_dependencies(pyproject: str, extra: Sequence[str], source: str, block: str) -> str:
    pattern = re.compile(rf"^{block} = \[\n(?P<body>.*?)^\]\n", re.MULTILINE | re.DOTALL)
    match = pattern.search(pyproject)
    if match is None:
        raise ScaffoldError(
            f"{source}: no '{block} = [' block ending with ']' on its own line; "
            "keep the list one requirement per line"
        )
    existing = [
        line.strip().rstrip(",").strip('"')
        for line in match.group("body").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    names = {requirement_name(req) for req in existing}
    merged = list(existing)
    for req in extra:
        name = requirement_name(req)
        if name in names:
            continue
        names.add(name)
        merged.append(req)
    body = "".join(f'    "{req}",\n' for req in sorted(merged, key=str.lower))
    return pyproject[: match.start()] + f"{block} = [\n{body}]\n" + pyproject[match.end() :]


def requirement_name(requirement: str) -> str:
    name = re.split(r"[\s\[<>=!~;@]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def join(folder: str, relative: str) -> str:
    return f"{folder}/{relative}" if folder and relative else folder or relative


def build_plan(
    manifest: Mapping[str, Any],
    tier: str,
    options: Mapping[str, str],
    name: str,
    layers: Layers | None = None,
) -> Plan:
    layers = Layers() if layers is None else layers
    comp = compose(manifest, tier, options, name)
    plan = Plan(overlays=[f"{flag}-{value}" for flag, value in options.items()])
    sources: dict[str, tuple[LayerFile, Tokens, Mapping[str, str]]] = {}
    # (kind, output folder, text, source, layer)
    controls: list[tuple[str, str, str, LayerFile, str]] = []
    removals = list(comp.removals)
    for mount in comp.mounts:
        files = layers.files(mount.layer)
        if files is None:
            # An option value whose layer is not written yet still renders; say so.
            plan.notes.append(f"layers/{mount.layer}/ has no files yet: base files only")
            continue
        for layer_file in files:
            relative = rename(layer_file.relative, mount.tokens)
            folder = join(mount.target, relative.rpartition("/")[0])
            if layer_file.name in CONTROL_FILES:
                text = rename(
                    apply_conditions(layer_file.text(), mount.context, manifest, layer_file.where),
                    mount.tokens,
                )
                if layer_file.name == "_remove.txt":
                    removals += [join(folder, line) for line in read_lines(text)]
                else:
                    controls.append((layer_file.name, folder, text, layer_file, mount.layer))
                continue
            sources[join(mount.target, relative)] = (layer_file, mount.tokens, mount.context)
    sources.update(comp.extra_files)

    for removed in removals:
        prefix = removed.rstrip("/") + "/"
        for relative in list(sources):
            if relative == removed or (removed.endswith("/") and relative.startswith(prefix)):
                del sources[relative]

    for relative, (source, tokens, context) in sorted(sources.items()):
        try:
            text = source.data.decode("utf-8")
        except UnicodeDecodeError:
            plan.files[relative] = source.data
            continue
        text = apply_conditions(text, context, manifest, source.where)
        plan.files[relative] = rename(text, tokens).encode("utf-8")

    for kind, folder, text, source, layer in controls:
        if kind == "_deps.txt":
            merge_deps_file(plan, folder, text, source.where)
        else:
            merge_env_file(plan, folder, text, source.where, layer)
    for relative, description in comp.descriptions.items():
        pyproject = plan.files[relative].decode("utf-8")
        pyproject = re.sub(
            r'(?m)^description = ".*"$',
            f"description = {json.dumps(description)}",
            pyproject,
            count=1,
        )
        plan.files[relative] = pyproject.encode("utf-8")
    check_rendered(plan, comp.all_tokens, name)
    return plan


def merge_deps_file(plan: Plan, folder: str, text: str, path: str) -> None:
    target = join(folder, "pyproject.toml")
    if target not in plan.files:
        raise ScaffoldError(
            f"{path}: no pyproject.toml in {folder or 'the output root'} to merge into"
        )
    groups: dict[str, list[str]] = {"dependencies": [], "dev": []}
    block = "dependencies"
    for line in read_lines(text):
        if line == "[dev]":
            block = "dev"
            continue
        if not REQUIREMENT_RE.match(line):
            raise ScaffoldError(f"{path}: {line!r} is not a requirement with a version bound")
        groups[block].append(line)
    pyproject = plan.files[target].decode("utf-8")
    for block, requirements in groups.items():
        if requirements:
            pyproject = merge_dependencies(pyproject, requirements, target, block)
    plan.files[target] = pyproject.encode("utf-8")


def merge_env_file(plan: Plan, folder: str, text: str, path: str, label: str) -> None:
    target = join(folder, ".env.example")
    env_lines = plan.files.get(target, b"").decode("utf-8").rstrip("\n").splitlines()
    block = text.strip("\n")
    keys = set()
    for number, line in enumerate(block.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            if "=" not in stripped:
                raise ScaffoldError(f"{path}:{number}: expected KEY=value or a # comment")
            keys.add(stripped.split("=", 1)[0].strip())
    # An option that sets a key already listed takes it over: one line per setting.
    env_lines = [line for line in env_lines if line.split("=", 1)[0].strip() not in keys]
    env_lines += ["", f"# --- {label} ---", *block.splitlines()]
    plan.files[target] = ("\n".join(env_lines) + "\n").encode("utf-8")


def check_rendered(plan: Plan, tokens: set[str], name: str) -> None:
    """No template token may survive unless the chosen name itself contains it."""
    package = package_name(name)
    left = [token for token in tokens if token not in name and token not in package]
    for relative, content in plan.files.items():
        for token in left:
            if token in relative or token.encode() in content:
                raise ScaffoldError(f"{relative}: template token {token!r} left unrendered")


def ensure_writable_target(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ScaffoldError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ScaffoldError(
            f"{out}: folder is not empty; choose another --out or pass --force to write into it "
            "(files with the same names are replaced, others are kept)"
        )


def write_plan(plan: Plan, out: Path) -> None:
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for relative, content in plan.files.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            if relative.startswith("scripts/") or content.startswith(b"#!"):
                target.chmod(0o755)
        if not out.exists():
            staging.rename(out)
            return
        # --force into an existing folder: move each finished file over its old copy.
        for relative in plan.files:
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / relative, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        manifest = load_manifest()
    except ScaffoldError as error:
        print(f"scaffold_fastapi.py: error: {error}", file=sys.stderr)
        return 1
    parser = build_parser(manifest)
    args = parser.parse_args(argv)
    options = resolve_options(parser, manifest, args)
    out: Path = args.out if args.out is not None else Path.cwd() / args.name
    try:
        plan = build_plan(manifest, args.tier, options, args.name)
        if args.dry_run:
            print(f"would write {len(plan.files)} files to {out}:")
            for relative in sorted(plan.files):
                print(f"  {relative}")
        else:
            ensure_writable_target(out, args.force)
            write_plan(plan, out)
            print(f"wrote {len(plan.files)} files to {out}")
    except ScaffoldError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"options: --tier {args.tier} " + " ".join(f"--{k} {v}" for k, v in options.items()))
    if not args.dry_run:
        print(f"next: cd {out} && see README.md (install, migrate, test, run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
