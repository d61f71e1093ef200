"""The names of the evaluation's rows, apart from the code that scores them (which loads torch), so readers of a
run's answers, such as the human review, share one list without that import."""

ROW_LABELS = {"zero_shot": "the base model zero-shot", "few_shot": "few-shot prompting",
              "scratch": "the same architecture trained from scratch", "tuned": "the tuned model"}
BASELINES = ("zero_shot", "few_shot", "scratch")
DEFAULT_BASELINES = ("zero_shot", "few_shot")  # scratch trains a model, so it is asked for by name
