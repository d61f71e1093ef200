"""The new-job form as a job request: model, files, method and hyperparameters from the fields, and further config
sections from the pasted YAML, checked by the same JobCreate model the API uses."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import yaml
from pydantic import ValidationError

from tunesmith.serve.api.errors import describe_validation
from tunesmith.serve.job_spec import SUPERVISED, JobCreate

HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")


class JobFormError(Exception):
    pass


@dataclass
class JobForm:
    """What the person typed, kept as text so a refused form comes back as they left it."""

    model: str = ""
    training_file: str = ""
    validation_file: str = ""
    method: str = SUPERVISED
    n_epochs: str = "auto"
    batch_size: str = "auto"
    learning_rate_multiplier: str = "auto"
    suffix: str = ""
    seed: str = ""
    config: str = ""

    @classmethod
    def from_fields(cls, fields) -> "JobForm":
        # The YAML stays as typed, so the line numbers of its errors are the lines the person sees.
        return cls(**{name: str(fields.get(name, "")) if name == "config" else str(fields.get(name, "")).strip()
                      for name in asdict(cls())})

    def request(self) -> JobCreate:
        # Numbers stay text: the request model converts "3" and "0.5", and names the field of one it can't.
        hyper = {name: getattr(self, name) for name in HYPERPARAMETERS if getattr(self, name) not in ("", "auto")}
        body = {"model": self.model, "training_file": self.training_file,
                "method": {"type": self.method, **({self.method: {"hyperparameters": hyper}} if hyper else {})}}
        for name in ("validation_file", "suffix", "seed"):
            if getattr(self, name):
                body[name] = getattr(self, name)
        if self.config.strip():
            body["tunesmith"] = parse_sections(self.config)
        try:
            return JobCreate.model_validate(body)
        except ValidationError as error:
            raise JobFormError(describe_validation(error.errors())[1]) from None


def parse_sections(text: str) -> dict:
    try:
        sections = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        reason = getattr(error, "problem", None) or str(error)
        raise JobFormError(f"tunesmith config (YAML){where}: {reason}") from None
    if sections is None:
        return {}
    if not isinstance(sections, dict):
        raise JobFormError("tunesmith config (YAML): expected sections such as `training: {max_steps: 50}`, got "
                           f"a {type(sections).__name__}")
    return sections
