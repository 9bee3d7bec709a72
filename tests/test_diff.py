"""`archspec diff`: VGG configuration C differs from D only in its three 1x1 convolutions."""
from conftest import SPECS, run_cli


def test_vgg_c_against_d():
    result = run_cli("diff", SPECS / "vgg16_c.yaml", SPECS / "vgg16.yaml")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "vgg16_c -> vgg16: 3 layer(s) differ"
    changed = [line.split()[1] for line in lines if line.startswith("  ~ ")]
    assert changed == ["features.14", "features.21", "features.28"]
    # Table 2 of the VGG paper: C has 134M parameters, D 138M (exact: 133,638,952 / 138,357,544).
    assert "params: 133,638,952 -> 138,357,544" in result.stdout


def test_diff_reports_bad_spec(write_spec):
    bad = write_spec("archspec: 1\ninput: [3, 8, 8]\nlayers: [rleu]\n")
    result = run_cli("diff", SPECS / "vgg16.yaml", bad)
    assert result.returncode == 1 and "unknown op or block 'rleu'" in result.stderr
