"""Training methods, each a small class plugged into the one loop of `floodx.training`."""

import importlib

from ..errors import ConfigError

# name -> "module:Class"; imported lazily so that one method's import cost or failure never
# touches the others.
REGISTRY = {
    "finetune": "floodx.methods.base:FineTune",
    "flooding": "floodx.methods.flooding:Flooding",
    "pgd": "floodx.methods.pgd:PGD",
    "freelb": "floodx.methods.freelb:FreeLB",
    "tavat": "floodx.methods.tavat:TAVAT",
    "infobert": "floodx.methods.infobert:InfoBERT",
    "iflood": "floodx.methods.iflood:IFlood",
    "adaflood": "floodx.methods.adaflood:AdaFlood",
    "ttso": "floodx.methods.ttso:TTSO",
    "ttso_pp": "floodx.methods.ttso:TTSOPlusPlus",
    "als": "floodx.methods.als:AdversarialLabelSmoothing",
    "accordance_probe": "floodx.methods.probe:AccordanceProbe",
}


def method_class(name):
    if name not in REGISTRY:
        raise ConfigError(f"unknown training method '{name}'; known: {sorted(REGISTRY)}")
    module_name, class_name = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_method(name, **params):
    return method_class(name)(**params)
