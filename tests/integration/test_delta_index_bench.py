"""The delta index benchmark, run as an operator runs it, checked for what it reports.

The figures themselves (rates) are not judged here; the properties are: the fill succeeds
without overflow, bits per entry stay within 3% of payload + min_bits + 1.5, every present name
is found, absent names almost never are, and the packed chapter fits the predicted pages.
"""
import json
import re
import subprocess


def run_bench(build_dir, *args):
    program = build_dir / "bench" / "delta-index-bench"
    result = subprocess.run(
        [str(program), "--entries=300000", "--benchmark_min_time=0.05",
         "--benchmark_format=json", *args],
        capture_output=True, text=True, timeout=600, check=True)
    report = json.loads(result.stdout)
    return result.stderr, {b["name"].split("/")[0]: b for b in report["benchmarks"]}


def test_volume_shape_bits_per_entry(build_dir):
    text, runs = run_bench(build_dir)
    fill = runs["BM_VolumeFill"]
    assert fill["entries"] == 300000
    assert fill["overflows"] == 0
    theory = fill["theory_bits"]
    assert theory == 23.5  # 10-bit payload + min_bits 12 + 1.5
    assert abs(fill["bits_per_entry"] - theory) / theory < 0.03
    assert abs(fill["with_headers"] - theory) / theory < 0.03
    summary = re.search(r"bits per entry: ([\d.]+) list data", text)
    assert summary and abs(float(summary.group(1)) - fill["bits_per_entry"]) < 0.01


def test_lookups_find_exactly_what_was_added(build_dir):
    _, runs = run_bench(build_dir)
    assert runs["BM_VolumeGetHit"]["found_fraction"] == 1.0
    # A miss only "finds" a name whose list and key collide with a present one.
    assert runs["BM_VolumeGetMiss"]["found_fraction"] < 0.01
    assert runs["BM_ChapterPageGetHit"]["found_fraction"] == 1.0
    assert runs["BM_ChapterPageGetMiss"]["found_fraction"] < 0.01


def test_chapter_fits_predicted_pages(build_dir):
    _, runs = run_bench(build_dir, "--benchmark_filter=Chapter")
    chapter = runs["BM_ChapterBuildAndPack"]
    assert chapter["pages"] <= chapter["predicted_pages"]
    assert abs(chapter["bits_per_entry"] - chapter["theory_bits"]) / chapter["theory_bits"] < 0.03


def test_rejects_bad_arguments(build_dir):
    program = build_dir / "bench" / "delta-index-bench"
    result = subprocess.run([str(program), "--entries=5"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "--entries" in result.stderr
