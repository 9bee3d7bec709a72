"""`archspec diff`: VGG configuration C differs from D only in its three 1x1 convolutions, and
diff says which settings changed and what that costs."""
import json

from conftest import ROOT, SPECS, run_cli


def test_vgg_c_against_d():
    result = run_cli("diff", SPECS / "vgg16_c.yaml", SPECS / "vgg16.yaml")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "vgg16_c -> vgg16: 3 layer(s) differ (0 added, 0 removed, 3 changed)"
    changed = [line.split()[1] for line in lines if line.startswith("  ~ ")]
    assert changed == ["features.14", "features.21", "features.28"]
    # Table 1 of the paper: C has 1x1 convolutions where D has 3x3 ones (padding 1 keeps the size)
    assert all("conv, kernel 1 → 3, padding 0 → 1" in line for line in lines if line.startswith("  ~ "))
    # Table 2 of the VGG paper: C has 134M parameters, D 138M (exact: 133,638,952 / 138,357,544).
    assert "params:           133,638,952 → 138,357,544 (+4,718,592, +3.5%)" in result.stdout


def test_head_swap_deltas_match_the_torch_modules():
    import torch.nn as nn

    result = run_cli("diff", SPECS / "resnet18.yaml", ROOT / "examples" / "resnet18_cifar10_head.yaml",
                     "-f", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    (fc,) = data["layers"]
    assert fc["name"] == "fc" and fc["change"] == "changed" and fc["settings"] == {"out": [1000, 10]}
    before = sum(p.numel() for p in nn.Linear(512, 1000).parameters())
    after = sum(p.numel() for p in nn.Linear(512, 10).parameters())
    assert fc["params"] == {"before": before, "after": after, "change": after - before,
                            "relative": (after - before) / before}
    assert data["totals"]["params"]["change"] == after - before
    assert data["output"] == [[1000], [10]]


def test_added_and_removed_layers_and_wiring(write_spec):
    a = write_spec("archspec: 1\nname: a\ninput: [3, 8, 8]\nlayers:\n  - conv: {id: c, out: 4, kernel: 3}\n"
                   "  - relu: {id: r}\n", "a.yaml")
    b = write_spec("archspec: 1\nname: b\ninput: [3, 8, 8]\nlayers:\n  - conv: {id: c, out: 4, kernel: 3}\n"
                   "  - batchnorm: {id: bn}\n  - relu: {id: r}\n", "b.yaml")
    result = run_cli("diff", a, b)
    assert result.returncode == 0, result.stderr
    assert "  + bn  batchnorm 4x6x6" in result.stdout
    assert "from c → bn" in result.stdout and "(1 added, 0 removed, 1 changed)" in result.stdout
    back = run_cli("diff", b, a, "--allow-outside")
    assert back.returncode == 0 and "  - bn  batchnorm 4x6x6" in back.stdout


def test_diff_reports_bad_spec(write_spec):
    bad = write_spec("archspec: 1\ninput: [3, 8, 8]\nlayers: [rleu]\n")
    result = run_cli("diff", SPECS / "vgg16.yaml", bad)
    assert result.returncode == 1 and "unknown op or block 'rleu'" in result.stderr
    usage = run_cli("diff", SPECS / "vgg16.yaml", SPECS / "vgg16.yaml", "-f", "xml")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
