"""The machine record tells CPU generations apart: the model name alone does not."""

from benchmarks.common.machine import cpu_generation, summary_line

ZEN4 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n"


def test_the_first_cpus_family_and_model_are_read(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(ZEN4 + "\n" + ZEN4.replace("processor\t: 0", "processor\t: 1").replace("17", "99"))
    assert cpu_generation(cpuinfo) == {"family": 25, "model": 17}


def test_a_cpuinfo_without_the_numbers_gives_none(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some ARM core\n")
    assert cpu_generation(cpuinfo) is None
    assert cpu_generation(tmp_path / "missing") is None


def test_the_summary_line_names_the_generation_and_old_records_still_print():
    info = {"gpu": None, "cpu": "AMD EPYC", "cpu_count": 2, "cpu_flags": {"avx2": True, "avx512_bf16": True},
            "torch_threads": 1, "matmul": {"fp32": {"gflops": 96.0, "size": 2048}}, "bf16_native": True,
            "load_average": [0.5, 0.4, 0.3], "cpu_generation": {"family": 25, "model": 17}}
    assert "AMD EPYC, 2 cores, family 25 model 17 (avx2, avx512_bf16)" in summary_line(info)
    del info["cpu_generation"]
    assert summary_line(info).startswith("AMD EPYC, 2 cores (avx2, avx512_bf16)")
