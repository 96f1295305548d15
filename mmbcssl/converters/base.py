"""What every source format provides, and the registry that finds them.

A source format turns a published checkpoint into backbone weights in the
key layout of the mmpretrain backbone that will load them (``ResNet``,
``VisionTransformer``, ``SwinTransformer`` or this project's ``BCSSL``):

1. :meth:`SourceFormat.detect` says from the keys whether a loaded file is
   of this format (``--from auto``);
2. :meth:`SourceFormat.select` picks one network of the file (the teacher or
   the student of a DINO checkpoint, ...) as a flat state dict in the
   source's own layout;
3. :meth:`SourceFormat.convert` renames (and, where the layouts differ,
   reorders) those tensors.

What no rule knows is kept aside as *unrecognised*, what a rule drops on
purpose (projection heads, classifiers, buffers the target computes itself)
as *dropped*; :mod:`mmbcssl.converters.targets` then checks the result
against the target backbone.
"""
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional,
                    Sequence, Tuple)

import torch

from mmbcssl.apis.inference import strip_wrappers, sub_state

StateDict = Dict[str, torch.Tensor]


class ConversionError(ValueError):
    """A checkpoint cannot be converted as asked; the message says why."""


@dataclass
class Converted:
    """Tensors renamed into the target layout.

    Attributes:
        state_dict: Target-layout keys (no ``backbone.`` prefix).
        unrecognised: Source keys that no rule of the format knows.
        dropped: Source keys left out on purpose (heads, buffers that the
            target backbone computes itself).
        layer_norm_eps: The eps every LayerNorm of the source network is
            built with, which the tensors do not tell (EsViT's Swin and
            DINO's ViT: 1e-6); None where the format does not know it or
            the network has none.
    """
    state_dict: 'OrderedDict[str, torch.Tensor]' = field(
        default_factory=OrderedDict)
    unrecognised: List[str] = field(default_factory=list)
    dropped: List[str] = field(default_factory=list)
    layer_norm_eps: Optional[float] = None


@dataclass
class Selected:
    """The network a format picked from a file.

    Attributes:
        state_dict: Its tensors in the source layout, wrappers removed.
        part: ``'teacher'``, ``'student'`` or None (one-network files).
        left_out: What else the file holds, for the report (e.g.
            ``'student'``, ``'teacher head.* (8 tensors)'``).
    """
    state_dict: StateDict
    part: Optional[str] = None
    left_out: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class Rule:
    """Rename keys that fully match ``pattern`` to ``target``.

    Args:
        pattern: Regular expression for the whole source key.
        target: Replacement, with ``\\1`` ... for the groups of ``pattern``.
        value_fn: Applied to the tensor (a reorder or reshape). Defaults to
            None (the tensor is kept as it is).
    """
    pattern: str
    target: str
    value_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None


def apply_rules(state_dict: Mapping[str, torch.Tensor],
                rules: Sequence[Rule],
                drop: Sequence[str] = ()) -> Converted:
    """Rename ``state_dict`` with the first rule that matches each key.

    Args:
        state_dict: Source tensors.
        rules: Tried in order; the first full match wins.
        drop: Patterns (full match) of keys to leave out on purpose.

    Returns:
        Converted: Keys no rule matches are listed as unrecognised.

    Raises:
        ConversionError: Two source keys would land on one target key.
    """
    compiled = [(re.compile(r.pattern), r) for r in rules]
    dropped_patterns = [re.compile(p) for p in drop]
    out = Converted()
    for key, value in state_dict.items():
        if any(p.fullmatch(key) for p in dropped_patterns):
            out.dropped.append(key)
            continue
        for regex, rule in compiled:
            match = regex.fullmatch(key)
            if match is None:
                continue
            new_key = match.expand(rule.target)
            if new_key in out.state_dict:
                raise ConversionError(
                    f'two source keys map to {new_key!r} (the second is '
                    f'{key!r}); the checkpoint mixes two layouts')
            out.state_dict[new_key] = rule.value_fn(value) \
                if rule.value_fn else value
            break
        else:
            out.unrecognised.append(key)
    return out


def strip_prefix(state_dict: Mapping[str, Any],
                 prefix: str) -> 'OrderedDict[str, Any]':
    """The entries under ``prefix``, with the prefix removed."""
    return OrderedDict(sub_state(state_dict, prefix))


# DistributedDataParallel's leading ``module.`` (any depth) dropped
strip_ddp = strip_wrappers


def is_state_dict(obj: Any) -> bool:
    """A non-empty mapping from strings to tensors."""
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor)
        for k, v in obj.items())


def tensor_dicts(ckpt: Any, names: Iterable[str]) -> Dict[str, StateDict]:
    """The entries of ``ckpt`` named ``names`` that are state dicts."""
    if not isinstance(ckpt, Mapping):
        return {}
    return {n: ckpt[n] for n in names if is_state_dict(ckpt.get(n))}


def count_indices(keys: Iterable[str], pattern: str) -> List[int]:
    """How many distinct ``j`` each ``i`` has in keys matching ``pattern``.

    ``pattern`` has two groups, ``i`` and ``j`` (e.g. stage and block); the
    result is indexed by ``i`` (0 for an ``i`` that never occurs).
    """
    found: Dict[int, set] = {}
    regex = re.compile(pattern)
    for k in keys:
        m = regex.match(k)
        if m:
            found.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    if not found:
        return []
    return [len(found.get(i, ())) for i in range(max(found) + 1)]


def describe_groups(keys: Iterable[str]) -> List[str]:
    """``['head.* (8 tensors)', ...]``: keys grouped by their first name."""
    groups: Dict[str, List[str]] = OrderedDict()
    for k in keys:
        groups.setdefault(k.split('.')[0], []).append(k)
    return [
        root if members == [root] else f'{root}.* ({len(members)} tensors)'
        for root, members in groups.items()
    ]


def other_entries(ckpt: Any, taken: Iterable[str]) -> List[str]:
    """Top-level entries of a checkpoint dict besides ``taken``."""
    if not isinstance(ckpt, Mapping):
        return []
    taken = set(taken)
    return [repr(k) for k in ckpt if k not in taken]


def head_keys(keys: Iterable[str], n: int = 10) -> str:
    """The first ``n`` keys, for messages."""
    keys = list(keys)
    more = f' ... ({len(keys)} in all)' if len(keys) > n else ''
    return ', '.join(keys[:n]) + more


class SourceFormat:
    """One published checkpoint format.

    Subclasses set ``name`` (the ``--from`` value), ``description`` (one
    line for help texts), ``weights`` (the networks ``--weights`` may pick,
    empty for files that hold one network) and implement the three steps.
    """
    name: str = ''
    description: str = ''
    weights: Tuple[str, ...] = ()

    def detect(self, ckpt: Any) -> bool:
        """Whether ``ckpt`` (as loaded) is in this format."""
        raise NotImplementedError

    def select(self, ckpt: Any, weights: Optional[str]) -> Selected:
        """One network of ``ckpt`` in the source layout."""
        raise NotImplementedError

    def convert(self, state_dict: StateDict) -> Converted:
        """Rename ``state_dict`` into the target layout."""
        raise NotImplementedError

    def _check_weights(self, weights: Optional[str]) -> None:
        if weights is None or weights in self.weights:
            return
        if not self.weights:
            raise ConversionError(
                f'{self.name} checkpoints hold one network; --weights '
                f'{weights} applies to {", ".join(weights_formats())}')
        raise ConversionError(
            f'--weights {weights!r} is not one of {self.name}\'s '
            f'{", ".join(self.weights)}')


FORMATS: 'OrderedDict[str, SourceFormat]' = OrderedDict()


def register_format(cls: type) -> type:
    """Class decorator: make a :class:`SourceFormat` known by its name."""
    fmt = cls()
    if fmt.name in FORMATS:
        raise KeyError(f'source format {fmt.name!r} is registered twice')
    FORMATS[fmt.name] = fmt
    return cls


def known_formats() -> List[str]:
    return sorted(FORMATS)


def weights_formats() -> List[str]:
    return sorted(n for n, f in FORMATS.items() if f.weights)


def get_format(name: str) -> SourceFormat:
    """The registered format ``name``.

    Raises:
        ConversionError: Unknown name; the message lists the known ones.
    """
    if name not in FORMATS:
        raise ConversionError(
            f'unknown checkpoint format {name!r}; known formats: auto, '
            f'{", ".join(known_formats())}')
    return FORMATS[name]


def detect_format(ckpt: Any, source: str = 'the checkpoint') -> SourceFormat:
    """The one registered format whose :meth:`~SourceFormat.detect` accepts
    ``ckpt``.

    Raises:
        ConversionError: None or several do; the message lists the known
            formats and the file's first keys.
    """
    found = [f for f in FORMATS.values() if f.detect(ckpt)]
    if len(found) == 1:
        return found[0]
    if found:
        raise ConversionError(
            f'{source} looks like several formats '
            f'({", ".join(f.name for f in found)}); pass --from')
    keys = list(ckpt) if isinstance(ckpt, Mapping) else []
    raise ConversionError(
        f'cannot tell the format of {source} from its keys (first: '
        f'{head_keys(map(str, keys))}); known formats: '
        f'{", ".join(known_formats())}; pass --from <format> if it is one '
        'of them')
