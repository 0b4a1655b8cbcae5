"""Weights on the Hugging Face Hub protocol: ``hf-hub:ORG/REPO[@REVISION]`` names the
``model.safetensors`` of a repo, at a branch, tag or commit (default: main). huggingface_hub does
the protocol -- its cache, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, tokens from ``HF_TOKEN`` or
``hf auth login`` -- and is the ``hub`` extra, imported only when a name asks for it. Every failure
is one line naming the repo; a failed download leaves nothing half-written in the cache."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import ZooError
from zoo.names import install
from zoo.files import downloads_refused, file_sha256, may_fetch

PREFIX = "hf-hub:"
WEIGHTS = "model.safetensors"
REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")


@dataclass(frozen=True)
class Ref:
    """A repo on the Hub and, optionally, a revision of it."""

    repo: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"{PREFIX}{self.repo}" + (f"@{self.revision}" if self.revision else "")


def is_hub(text: object) -> bool:
    return isinstance(text, str) and text.startswith(PREFIX)


def parse(text: str) -> Ref:
    """'hf-hub:org/name@v1' -> Ref('org/name', 'v1'); a malformed name is a ZooError."""
    repo, _, revision = text.removeprefix(PREFIX).partition("@")
    if not REPO.fullmatch(repo) or ".." in repo or (revision and (not REVISION.fullmatch(revision) or ".." in revision)):
        raise ZooError(f"'{text[:120]}' is not a Hub name: hf-hub:ORG/REPO or hf-hub:ORG/REPO@REVISION (letters, "
                       "digits, '.', '_', '-')")
    return Ref(repo, revision or None)


def library():
    """huggingface_hub, or a ZooError saying which extra installs it."""
    try:
        import huggingface_hub
    except ImportError:
        raise ZooError(f"hf-hub: names need huggingface_hub: {install('hub')}") from None
    return huggingface_hub


def download(ref: Ref, file: str = WEIGHTS) -> tuple[Path, str]:
    """The cached ``file`` (``model.safetensors``) of ``ref`` (downloaded when not cached) and the
    commit it is from. A revision that names no branch, tag or commit but is the start of one
    commit's id (the 7 or 12 digits zoo push prints) means that commit."""
    hf = library()
    from huggingface_hub.errors import LocalEntryNotFoundError, RevisionNotFoundError

    refused = downloads_refused()  # then only a file already in the cache will do
    try:
        path = Path(hf.hf_hub_download(ref.repo, file, revision=ref.revision, local_files_only=refused))
    except Exception as exc:
        if refused and isinstance(exc, LocalEntryNotFoundError):
            may_fetch(f"hf-hub:{ref.repo}{'@' + ref.revision if ref.revision else ''} ({file})")
        _clean_incomplete(hf, ref)
        if isinstance(exc, RevisionNotFoundError) and SHORT_COMMIT.fullmatch(ref.revision or ""):
            return download(Ref(ref.repo, _commit(hf, ref)), file)
        raise ZooError(explain(exc, ref, file)) from None
    _as_announced(path, ref, file)
    return path, path.parent.name  # the cache keeps each file under snapshots/<commit>/


def _as_announced(path: Path, ref: Ref, file: str) -> None:
    """ZooError unless the cached file's bytes are those the Hub announced: huggingface_hub keeps each
    file as ``blobs/<ETag>``, the sha256 of a file in LFS (git's blob id of a small one), so a file
    changed in the cache after its download (its labels, its card) is caught, not only its tensors."""
    blob = path.resolve()
    announced = blob.name
    if re.fullmatch(r"[0-9a-f]{64}", announced):
        actual = file_sha256(blob)
    elif re.fullmatch(r"[0-9a-f]{40}", announced) and blob.stat().st_size <= SMALL_FILE:
        actual = git_oid(blob.read_bytes())
    else:  # a cache without symlinks (Windows) keeps no ETag to compare with
        return
    if actual != announced:
        raise ZooError(f"{ref}: {file} in the Hugging Face cache is not what the Hub announced (sha256 "
                       f"{announced[:12]}..., the file's {actual[:12]}...): it changed after the download. Delete "
                       f"{blob} to download it again")


SMALL_FILE = 16 << 20  # the Hub keeps larger files in LFS, announced by their sha256


SHORT_COMMIT = re.compile(r"[0-9a-f]{7,39}")


def _commit(hf, ref: Ref) -> str:
    """The one commit of the repo (on any branch) whose id starts with ``ref.revision``."""
    api = hf.HfApi()
    try:
        found = {c.commit_id for branch in api.list_repo_refs(ref.repo).branches
                 for c in api.list_repo_commits(ref.repo, revision=branch.name) if c.commit_id.startswith(ref.revision)}
    except Exception as exc:
        raise ZooError(explain(exc, ref, WEIGHTS)) from None
    if len(found) != 1:
        raise ZooError(f"{ref}: {ref.repo} has no branch or tag '{ref.revision}', and " +
                       (f"{len(found)} commits start with it: give more of the id" if found else
                        "no commit starts with it"))
    return found.pop()


def explain(exc: Exception, ref: Ref, file: str) -> str:
    """One line saying what went wrong reaching ``ref`` and what to do."""
    from huggingface_hub import constants, errors

    if isinstance(exc, errors.LocalEntryNotFoundError):
        if constants.HF_HUB_OFFLINE:
            return f"{ref}: not in the local Hugging Face cache, and HF_HUB_OFFLINE is set: download it once online"
        if exc.__cause__ is None or not isinstance(exc.__cause__, errors.HfHubHTTPError):
            return f"{ref}: the Hub could not be reached ({_first(exc.__cause__ or exc)}) and the file is not cached"
        exc = exc.__cause__
    if isinstance(exc, errors.RevisionNotFoundError):
        return f"{ref}: {ref.repo} has no revision '{ref.revision}' (a branch, tag or commit)"
    if isinstance(exc, errors.EntryNotFoundError):
        return (f"{ref}: the repo has no {file}, so it is not a zoo model (zoo push writes one with zoo's metadata "
                "inside)")
    if isinstance(exc, (errors.RepositoryNotFoundError, errors.GatedRepoError)):
        return (f"{ref}: no such repo on the Hub, or your token cannot read it (log in with 'hf auth login' or set "
                "HF_TOKEN)")
    if isinstance(exc, errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "an error"
        return f"{ref}: the Hub answered {status}: {_first(exc)}"
    return f"{ref}: the download failed: {_first(exc)}"


def _first(exc: Exception) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)[:300]


def _clean_incomplete(hf, ref: Ref) -> None:
    """Remove the partial blobs a failed download of ``ref`` left in the cache."""
    folder = Path(hf.constants.HF_HUB_CACHE) / f"models--{ref.repo.replace('/', '--')}" / "blobs"
    for partial in folder.glob("*.incomplete") if folder.is_dir() else ():
        partial.unlink(missing_ok=True)


def git_oid(data: bytes) -> str:
    """The git blob id of ``data``: what the Hub reports for a file not stored in LFS."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def upload(files: dict[str, bytes | Path], ref: Ref, *, force: bool, message: str) -> tuple[str, list[str]]:
    """Commit ``files`` (repo path -> bytes, or a file to read them from) to ``ref`` (its branch, created when new), creating the
    repo when needed; a file the repo has with other content is replaced only with ``force``. The
    commit id and the paths that changed (none: nothing was committed)."""
    hf = library()
    from huggingface_hub.errors import RevisionNotFoundError

    api = hf.HfApi()
    new_branch = False
    try:
        api.create_repo(ref.repo, exist_ok=True)
        try:
            infos = api.get_paths_info(ref.repo, list(files), revision=ref.revision)
        except RevisionNotFoundError:  # a new branch starts from main: compare with main's files
            new_branch = bool(ref.revision)
            if not new_branch:
                raise
            infos = api.get_paths_info(ref.repo, list(files))
        remote = {info.path: info for info in infos}
    except Exception as exc:
        raise ZooError(explain(exc, ref, WEIGHTS)) from None
    changed = [path for path, data in files.items() if path not in remote or not _same(remote[path], data)]
    replaced = [path for path in changed if path in remote]
    if replaced and not force:
        raise ZooError(f"{ref}: {', '.join(replaced)} differ from what is pushed; --force replaces them (the Hub "
                       "keeps the old ones in the repo's history)")
    if not changed:
        return remote[WEIGHTS].blob_id if WEIGHTS in remote else "", []
    operations = [hf.CommitOperationAdd(path, files[path]) for path in changed]
    try:
        if new_branch:  # only now that nothing is refused
            api.create_branch(ref.repo, branch=ref.revision, exist_ok=True)
        commit = api.create_commit(ref.repo, operations, commit_message=message, revision=ref.revision)
    except Exception as exc:
        raise ZooError(explain(exc, ref, WEIGHTS)) from None
    return commit.oid, changed


def _same(info, data: bytes | Path) -> bool:
    if getattr(info, "lfs", None):
        return info.lfs.sha256 == (file_sha256(data) if isinstance(data, Path) else hashlib.sha256(data).hexdigest())
    return info.blob_id == git_oid(data.read_bytes() if isinstance(data, Path) else data)
