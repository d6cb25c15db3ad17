"""KerasTuner searches over the operators' hyper-parameters.

A search in a few lines (or `structconv tune`, see `keras_structconv.cli.tune`):

```python
from keras_structconv import datasets, tuning

hypermodel = tuning.StructconvHyperModel("ResNet20", operators="psconv,treeconv,tam")
tuner = tuning.make_tuner(hypermodel, "bayesian", max_trials=20, directory="runs/resnet20")
(x, y), _ = datasets.load_embedded_cifar10()
tuner.search(x[:1500], y[:1500], validation_data=(x[1500:], y[1500:]), epochs=3)
print(tuning.format_table(tuning.trial_rows(tuner), top=5))
```

- `data`: the train subset / held-out validation / test split of a search;
- `backbones`: the backbones (our builders, `keras.applications.<Name>`, AOGNetCIFAR) and where
  their operators sit, stage by stage;
- `space`: the operators' hyper-parameters (per stage, conditional) and the factories they give;
- `hypermodel`: `StructconvHyperModel` (build, fit on our CIFAR pipeline, measurements, budget);
- `timing`: the train-step timer;
- `tuners`: `make_tuner` (random search, Bayesian optimization, Hyperband), trial records,
  distributed search with recovery from lost workers;
- `results`: trial rows, the top-trials table, `results.md`, the best model.
"""

from keras_structconv.tuning.backbones import Backbone, backbone_names, get_backbone
from keras_structconv.tuning.data import SearchData, load_search_data
from keras_structconv.tuning.hypermodel import (
    OBJECTIVES,
    BudgetExceededError,
    StructconvHyperModel,
)
from keras_structconv.tuning.results import (
    TrialRow,
    format_table,
    results_markdown,
    save_best_model,
    trial_rows,
)
from keras_structconv.tuning.space import OPERATORS, OperatorPlan, parse_operators
from keras_structconv.tuning.timing import StepTimer
from keras_structconv.tuning.tuners import (
    TUNERS,
    StructconvHyperband,
    StructconvTuner,
    distributed_env,
    distributed_role,
    make_tuner,
)

__all__ = [
    "OBJECTIVES",
    "OPERATORS",
    "TUNERS",
    "Backbone",
    "BudgetExceededError",
    "OperatorPlan",
    "StepTimer",
    "StructconvHyperModel",
    "StructconvHyperband",
    "StructconvTuner",
    "SearchData",
    "TrialRow",
    "backbone_names",
    "distributed_env",
    "distributed_role",
    "format_table",
    "get_backbone",
    "make_tuner",
    "parse_operators",
    "load_search_data",
    "results_markdown",
    "save_best_model",
    "trial_rows",
]
