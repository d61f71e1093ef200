"""A job's runner caches what it derives from the tenant's data under --home, apart from the shared cache."""

from tunesmith.cache import cache_root
from tunesmith.serve.job_cache import job_cache_dir, remove_job_cache, use_job_cache
from tunesmith.serve.settings import make_settings


def test_the_core_caches_in_the_jobs_folder_and_shares_only_converted_models(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    monkeypatch.setenv("TUNESMITH_CACHE", str(shared))
    settings = make_settings(tmp_path / "home")
    folder = use_job_cache(settings, "ftjob-1")
    assert folder == job_cache_dir(settings, "ftjob-1") and folder.is_relative_to(settings.home)
    assert cache_root() == folder  # what the core reads from now on, in this process and those it starts
    (cache_root() / "tokenized").mkdir()
    (cache_root() / "models" / "converted").mkdir()
    assert (shared / "models" / "converted").is_dir() and not (shared / "tokenized").exists()

    assert use_job_cache(settings, "ftjob-1") == folder  # a torchrun rank, started with the supervisor's setting
    remove_job_cache(settings, "ftjob-1")
    assert not folder.exists() and (shared / "models" / "converted").is_dir()
