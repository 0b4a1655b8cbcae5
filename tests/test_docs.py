"""The docs: generated reference up to date, quickstart runs as written, CLI reference complete, links
resolve, and the example plugin installs and builds."""

import argparse
import os
import re
import shlex
import subprocess
import sys

import pytest
from conftest import BIN, ROOT, assert_png, make_registry, pip_installed, run_zoo

import zoo
from zoo.cli import parser
from zoo.registry.reference import render, title

DOCS = ROOT / "docs"
EXAMPLE_PLUGIN = DOCS / "examples" / "zoo-plugin-example"


def fenced(path, language: str) -> list[str]:
    """The bodies of the ```language blocks of a Markdown file, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", path.read_text(), re.MULTILINE | re.DOTALL)


def test_components_md_matches_the_registry():
    assert (DOCS / "components.md").read_text() == render(make_registry()), "run: zoo docs --out docs/components.md"


def test_zoo_docs_check_fails_on_a_stale_file_and_out_writes_it(tmp_path):
    stale = tmp_path / "components.md"
    stale.write_text((DOCS / "components.md").read_text().replace("| `dim` | `int` | `312` |", "| `dim` | `int` | `64` |"))
    result = run_zoo("docs", "--check", str(stale))
    assert result.returncode == 1
    assert f"zoo: {stale} is out of date; run: zoo docs --out {stale}" in result.stderr
    assert run_zoo("docs", "--out", str(stale)).returncode == 0
    assert run_zoo("docs", "--check", str(stale)).returncode == 0
    assert run_zoo("docs").stdout == stale.read_text()


def test_zoo_docs_recipes_replaces_only_the_generated_key_tables(tmp_path):
    stale = tmp_path / "recipes.md"
    original = (DOCS / "recipes.md").read_text()
    stale.write_text(original.replace("| `seed` | an integer from 0 to 2**63 - 1 | `0` |", "| `seed` | an integer | `1` |"))
    result = run_zoo("docs", "--recipes", "--check", str(stale))
    assert result.returncode == 1 and f"run: zoo docs --recipes --out {stale}" in result.stderr
    assert run_zoo("docs", "--recipes", "--out", str(stale)).returncode == 0
    assert stale.read_text() == original
    assert run_zoo("docs", "--recipes").stdout in original
    unmarked = tmp_path / "notes.md"
    unmarked.write_text("# notes\n")
    refused = run_zoo("docs", "--recipes", "--out", str(unmarked))
    assert refused.returncode == 2 and "no '<!-- schema:start -->' ... '<!-- schema:end -->' block" in refused.stderr
    assert unmarked.read_text() == "# notes\n"


def test_component_reference_lists_every_component_with_its_parameters():
    text = (DOCS / "components.md").read_text()
    registry = make_registry()
    names = [c.name for c in registry.components() if not c.library]  # a library's: named, not listed
    shared = {name for name in names if names.count(name) > 1}
    assert shared == {"mse"}  # a loss and a metric: their headings say which is which
    for component in registry.components():
        if component.library:
            assert f"plugin `{component.plugin.name}` registers {component.library}'s" in text
            continue
        section = text.split(f"\n### {title(component, shared)}\n", 1)[1].split("\n### ", 1)[0]
        prose = " ".join(section.replace("\\*", "*").replace("``", "").split())
        assert component.summary.split("*")[0] in prose
        for param in component.params:
            assert f"| `{param.name}` |" in section, (component.name, param.name)


def test_quickstart_runs_as_written(tmp_path):
    """Every command of docs/quickstart.md, in order, in a fresh folder (the install step is the README's)."""
    install, *commands = fenced(DOCS / "quickstart.md", "bash")
    readme = (ROOT / "README.md").read_text()
    assert install.splitlines()[0].split(" && .venv/bin/zoo")[0] in readme
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for block in commands:
        for line in block.splitlines():
            if line.strip():
                result = subprocess.run(shlex.split(line), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
                assert result.returncode == 0, (line, result.stderr)
    assert (tmp_path / "runs" / "mnist-mlp" / "weights.safetensors").is_file()
    assert_png(tmp_path / "runs" / "mnist-mlp" / "loss.png", (450, 1200))
    assert_png(tmp_path / "mnist-mlp-curves.png", (450, 1200))
    assert_png(tmp_path / "relu-stats.png", (500, 1200))
    [code] = fenced(DOCS / "quickstart.md", "python")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    predicted, labels, metrics = result.stdout.splitlines()
    assert len(eval(predicted.split(None, 1)[1])) == 8 and labels.split(None, 1)[1] == "[7, 2, 1, 0, 4, 1, 4, 9]"
    assert "'test_accuracy': 0.91" in metrics  # the build from step 2, not the catalog model (0.961)


def _commands() -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in parser(zoo.default_registry())._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices


def test_cli_reference_describes_every_command_and_option():
    text = (DOCS / "cli.md").read_text()
    commands = _commands()
    assert set(re.findall(r"^### zoo (\w+)$", text, re.MULTILINE)) == set(commands)
    for name, command in commands.items():
        section = text.split(f"### zoo {name}\n", 1)[1].split("\n### ", 1)[0]
        for action in command._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    assert option in section, f"zoo {name} {option} is not in docs/cli.md"
            if not action.option_strings and action.dest != "help":
                assert action.metavar or action.dest.upper() in section, (name, action.dest)
    for action in parser(zoo.default_registry())._actions:
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                assert option in text


def test_the_docs_site_builds_offline_with_no_warning(tmp_path):
    result = subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr
    page = (tmp_path / "site" / "components" / "index.html").read_text()
    assert 'id="multi-head-attention"' in page and (tmp_path / "site" / "examples" / "encoder.py").is_file()


def test_links_in_the_docs_resolve():
    pages = [ROOT / "README.md", *DOCS.rglob("*.md")]
    checked = 0
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "#")):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{page.relative_to(ROOT)} links to missing {target}"
            checked += 1
    assert checked > 30


@pytest.fixture(scope="module")
def example_plugin(tmp_path_factory):
    """docs/examples/zoo-plugin-example pip-installed into a folder of its own, put on PYTHONPATH."""
    return pip_installed(tmp_path_factory.mktemp("example-site"), EXAMPLE_PLUGIN)


def test_zoo_docs_documents_an_installed_plugin(example_plugin):
    text = run_zoo("docs", env=example_plugin).stdout
    assert "`example` (zoo-plugin-example 0.2.0, module `zoo_example`)" in text
    section = text.split("\n### gated-linear\n", 1)[1].split("\n### ", 1)[0]
    assert "Gated linear unit: (x W + b) \\* sigmoid(x V + c)" in section and "| `out_features` | `int` | `64` |" in section
