"""The instructor CLI's integrity checks without a kernel: package snapshots (diff and byte-for-byte restore),
the sandbox's environment, check cells compared with the question list, rebinding of ``check``, and the
comparison of kernel fingerprints."""
import hashlib
import os
from pathlib import Path

import nbformat
import pytest

from cnnkit.grade_integrity import (Snapshot, check_cell_problems, expected_check_cells, kernel_env, make_sandbox,
                                    redefinitions)
from cnnkit.grade_remote import changes
from cnnkit.grade_runner import fingerprint, namespace_problems
from cnnkit.grading import Exercise


def tree_hashes(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


@pytest.fixture
def pkg(tmp_path):
    root = tmp_path / "cnnkit"
    (root / "checks").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "grading.py").write_text("def run(): return 1\n")
    (root / "checks" / "ch01.py").write_text("EXERCISE = 1\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "grading.cpython-311.pyc").write_bytes(b"\x00real")
    return root


def test_snapshot_names_every_change_and_restores_byte_for_byte(pkg):
    before = tree_hashes(pkg)
    snap = Snapshot.take(pkg)
    assert snap.diff() == [] and len(snap.digest) == 64
    (pkg / "checks" / "ch01.py").write_text("EXERCISE = 'forged'\n")
    (pkg / "grading.py").unlink()
    (pkg / "checks" / "ch99.py").write_text("evil = 1\n")
    (pkg / "new_folder" / "deep").mkdir(parents=True)
    (pkg / "new_folder" / "deep" / "x.py").write_text("x = 1\n")
    (pkg / "__pycache__" / "grading.cpython-311.pyc").write_bytes(b"forged")
    os.chmod(pkg / "checks", 0o500)  # a read-only folder must not stop the restore
    assert snap.diff() == [
        {"path": "__pycache__/grading.cpython-311.pyc", "change": "modified"},
        {"path": "checks/ch01.py", "change": "modified"},
        {"path": "checks/ch99.py", "change": "added"},
        {"path": "grading.py", "change": "deleted"},
        {"path": "new_folder/deep/x.py", "change": "added"},
    ]
    assert snap.restore() == []
    assert tree_hashes(pkg) == before and not (pkg / "new_folder").exists() and snap.diff() == []


def test_snapshot_of_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        Snapshot.take(tmp_path / "nowhere")


def test_sandbox_and_kernel_environment(pkg, tmp_path):
    sub = tmp_path / "sub.ipynb"
    sub.write_text("{}")
    box = make_sandbox(sub, Snapshot.take(pkg))
    try:
        assert [p.name for p in box.work.iterdir()] == ["sub.ipynb"]
        assert (box.package / "checks" / "ch01.py").read_text() == "EXERCISE = 1\n"
        assert not (box.package / "__pycache__").exists()  # no bytecode copied: the kernel compiles the sources
        env = kernel_env(box, {"PATH": "/bin", "HOME": "/home/me", "CNNKIT_STRICT": "1", "CNNKIT_GRADE_LOG": "x",
                               "AWS_SECRET_ACCESS_KEY": "s", "GITHUB_TOKEN": "t", "PYTHONPATH": "/extra",
                               "LC_ALL": "C", "OMP_NUM_THREADS": "2"})
        assert env["HOME"] == str(box.home) and env["PATH"] == "/bin"
        assert env["PYTHONPATH"].split(os.pathsep) == [str(box.lib), "/extra"]
        assert [k for k in env if k.startswith("CNNKIT")] == ["CNNKIT_DEFER_CHECKS"]
        assert "AWS_SECRET_ACCESS_KEY" not in env and "GITHUB_TOKEN" not in env
        assert env["LC_ALL"] == "C" and env["OMP_NUM_THREADS"] == "2" and env["TMPDIR"] == str(box.tmp)
    finally:
        box.cleanup()
    assert not box.root.exists()


def exercise():
    ex = Exercise("01_convolution")
    ex.question("q1", "conv_output_size")
    ex.question("q2", "conv_params", "dense_params")
    ex.question("q3", "conv2d_loops")
    return ex


def cells(*sources):
    return [nbformat.v4.new_code_cell(s) for s in sources]


def test_check_cells_come_from_the_question_list():
    assert expected_check_cells(exercise()) == {"q1": 'check("q1", conv_output_size)',
                                               "q2": 'check("q2", conv_params, dense_params)',
                                               "q3": 'check("q3", conv2d_loops)'}
    nb = cells("x = 1", "check('q1',conv_output_size)", 'check("q2", print)', "# check q3 was here")
    assert check_cell_problems(nb, exercise()) == [
        {"question": "q2", "change": "edited", "expected": 'check("q2", conv_params, dense_params)', "cell": 2,
         "found": 'check("q2", print)'},
        {"question": "q3", "change": "deleted", "expected": 'check("q3", conv2d_loops)', "cell": None, "found": ""}]


def test_rebinding_check_or_checker_is_found_in_the_code():
    nb = cells('from cnnkit.grading import Checker, rng\ncheck = Checker("01_convolution", timeout=5)',
               "def check(*a):\n    pass", "check = print", "from os import path as Checker",
               "globals()['check'] = len", "%time x = 1\nclass Checker: pass", "checker = 1\ncheck_x = 2",
               'check = Checker("02_padding_stride")', "from cnnkit.grading import Checker as check")
    found = [(r["cell"], r["name"]) for r in redefinitions(nb, "01_convolution")]
    assert found == [(1, "check"), (2, "check"), (3, "Checker"), (4, "check"), (5, "Checker"), (7, "check"),
                     (8, "check")]


def test_changes_name_the_outermost_replaced_object():
    before = {"m": 1, "m.f": 2, "m.f.__code__": 3, "m.g": 4, "m.g.__code__": 5, "n": 6, "n.h": 7, "n.k": 8}
    after = {"m": 1, "m.f": 2, "m.f.__code__": 30, "m.g": 40, "m.g.__code__": 50, "n": 60, "n.h": 70}
    assert changes(before, after, "now") == [
        {"kind": "kernel", "name": "m.f", "detail": "its code was replaced now"},
        {"kind": "kernel", "name": "m.g", "detail": "replaced now"},
        {"kind": "kernel", "name": "n", "detail": "replaced now"}]
    assert changes(before, before, "now") == []


def test_fingerprint_sees_a_patched_module_function_and_a_redefined_check():
    import cnnkit.grading as grading
    ns = {"check": grading.Checker("01_convolution"), "Checker": grading.Checker}
    base = fingerprint(ns)
    assert "cnnkit.grading.Checker.__call__" in base and "sys.setprofile" in base
    assert namespace_problems(ns, "01_convolution") == []
    real = grading.run_question
    try:
        grading.run_question = lambda *a, **k: None
        assert [c["name"] for c in changes(base, fingerprint(ns), "x")] == ["cnnkit.grading.run_question"]
    finally:
        grading.run_question = real
    assert changes(base, fingerprint(ns), "x") == []
    ns["check"] = print
    assert [p["name"] for p in namespace_problems(ns, "01_convolution")] == ["check"]


def test_torch_wrapping_its_own_functions_is_not_a_patch():
    import torch
    base = fingerprint({})
    real = torch.manual_seed
    try:
        import torch._dynamo  # noqa: F401 - wraps torch.manual_seed on import (when it has not been yet)
        torch.manual_seed = torch._disable_dynamo(real)
        assert changes(base, fingerprint({}), "x") == []
        torch.manual_seed = lambda seed: None
        assert [c["name"] for c in changes(base, fingerprint({}), "x")] == ["torch.manual_seed"]
    finally:
        torch.manual_seed = real
