"""Language-model methods; importing this package registers them (one module per method or close family).

Imported in the order users see them listed: from every weight to the fewest.
"""

from tunesmith.methods.llm import full  # noqa: F401  isort: skip
from tunesmith.methods.llm import freeze  # noqa: F401  isort: skip
from tunesmith.methods.llm import lora  # noqa: F401  isort: skip
from tunesmith.methods.llm import qlora  # noqa: F401  isort: skip
from tunesmith.methods.llm import ia3  # noqa: F401  isort: skip
from tunesmith.methods.llm import prompt_learning  # noqa: F401  isort: skip
