"""The base every layer, activation, loss and optimizer shares: its backend, resolved once from `xp=`."""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import sys
import types
from typing import TYPE_CHECKING, Any, TypeAlias

import safetensors.numpy

from nnx import _checks, backends
from nnx.backends import Backend, _host
from nnx.errors import CallOrderError

if TYPE_CHECKING:
    from typing_extensions import Self

Array: TypeAlias = Any  # an array of a component's backend: a NumPy or CuPy ndarray, a torch tensor, ...
BackendSpec: TypeAlias = str | types.ModuleType | Backend | None  # what `xp=` accepts: see `nnx.backends.get`
FilePath: TypeAlias = str | bytes | os.PathLike[str] | os.PathLike[bytes]  # a file to read or write; `~` is expanded

_classes: dict[str, type[Component]] = {}  # every Component subclass defined so far, by its kind
_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_ABSENT = object()
MAIN = "__main__"  # the module of a script or notebook; "__mp_main__" is its copy in a spawned worker process


def defined_by_nnx(cls: type) -> bool:
    """Whether `cls` is one of nnx's own classes: defined in a module of the nnx package, from its files.

    Args:
        cls: A class.

    Returns:
        True for nnx's classes (saved under their bare names), False for any other, whatever its module is called.
    """
    module = cls.__module__
    file = getattr(sys.modules.get(module), "__file__", None)
    in_package = isinstance(file, str) and os.path.abspath(file).startswith(_PACKAGE + os.sep)
    return (module == "nnx" or module.startswith("nnx.")) and in_package


def _defining_module(cls: type) -> str:
    """The module a file records for a user class: a script's `__main__` under the name it was run by (`python -m
    pkg.train` gives 'pkg.train'), or '__main__' for a plain script or a notebook."""
    if cls.__module__ not in (MAIN, "__mp_main__"):
        return cls.__module__
    name = getattr(getattr(sys.modules.get(cls.__module__), "__spec__", None), "name", None)
    return name if isinstance(name, str) and name not in (MAIN, "__mp_main__") else MAIN


def component_class(kind: str) -> type[Component] | None:
    """The class registered under a saved `kind` (see `Component.kind`), or None: files never name code to run.

    Args:
        kind: The saved kind.

    Returns:
        The class this program defined last under that kind, or None.
    """
    return _classes.get(kind)


def classes_named(qualname: str) -> list[type[Component]]:
    """The classes this program defines, nnx's own aside, whose `__qualname__` is `qualname` ('LeakyReLU')."""
    return [cls for cls in _classes.values() if cls.__qualname__ == qualname and not defined_by_nnx(cls)]


class Component:
    """The base of every layer, activation, loss, optimizer and accuracy: one backend, resolved at construction.

    Subclass it to write your own layer (with `forward` and `backward`): compute with `self.xp`, the array namespace
    of its backend, and it runs on every backend. `ARRAYS` names the attributes that hold state worth keeping
    (parameters): `to()` moves them, and files and copies store them. `CONFIG` names the constructor arguments
    that `get_config()` returns, so that a saved file or a copy can rebuild the component: every argument but `xp`,
    each kept in an attribute of the same name. A component whose config cannot rebuild it is refused by
    `Model.add`/`set`/`finalize`, saving and copying (see `config_problems`), never found out at load.

    Args:
        xp: The backend to compute on: a backend name ('numpy', 'cupy', 'torch', ...), an array module, an
            `nnx.backends.Backend`, or None for the current one (`nnx.backends.current()`).

    Attributes:
        backend: The `nnx.backends.Backend` this component computes on.
        xp: The array namespace of that backend.
    """

    ARRAYS: tuple[str, ...] = ()
    CONFIG: tuple[str, ...] = ()
    position: int | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _classes[cls.kind()] = cls

    @classmethod
    def kind(cls) -> str:
        """The name a saved file records for this class.

        Returns:
            The bare class name for nnx's own classes ('Dense'); `module.QualName` for any other, with the module
            that defines it ('mylib.layers.LeakyReLU'), or '__main__.LeakyReLU' for a class of a script or a
            notebook (the module's name when it was run with `python -m module`).
        """
        return cls.__name__ if defined_by_nnx(cls) else f"{_defining_module(cls)}.{cls.__qualname__}"

    def __init__(self, xp: BackendSpec = None) -> None:
        self.backend: Backend = backends.get(xp)
        self.xp: Any = self.backend.xp

    def kernel_spec(self) -> Any:
        """What a compiled training step needs to know about this component.

        Only the class that defines it is trusted, so a subclass inherits none (it may compute something else):
        define it again to opt in.

        Returns:
            One of the typed specs in `nnx.training` (`DenseSpec`, `ActivationSpec`, `DropoutSpec`, `LossSpec`,
            `AccuracySpec`, `OptimizerSpec`), e.g. ``ActivationSpec("relu")``, or None when no kernel computes this
            component: `Model.train` then runs the generic, layer-by-layer step. Anything else (a dict, a string,
            an exception) is a TypeError naming the component when the step is planned.
        """
        return None

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this component.

        Returns:
            {name: value} for each name in `CONFIG`: JSON-friendly, with no arrays and no backend.
        """
        return {name: getattr(self, name) for name in self.CONFIG}

    @classmethod
    def config_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[Any, ...]] | None:
        """The shapes of the arrays that `from_config(config)` would allocate.

        Loading checks a file's record against its tensors with them, before anything is allocated.

        Args:
            config: A dictionary as `get_config()` returns it.

        Returns:
            {array name: shape}, or None when the class cannot say (the default).
        """
        return None

    @classmethod
    def from_config(cls, config: dict[str, Any], xp: BackendSpec = None) -> Self:
        """Build a new component from `get_config()`'s dictionary.

        Args:
            config: The constructor arguments, as `get_config()` returns them.
            xp: The backend of the new component (see the class's `xp`); None is the current one.

        Returns:
            The new component, with freshly initialised arrays.
        """
        return cls(**config, xp=xp)

    @property
    def label(self) -> str:
        """How error messages name this component: its repr, and its place in a model once it has one."""
        return repr(self) if self.position is None else f"{self!r} at layer {self.position}"

    def to(self, spec: BackendSpec) -> Self:
        """Move this component's state (its `ARRAYS`) to another backend, through the host, and compute there.

        Each array keeps its dtype: a backend without that dtype says so rather than rounding.

        Args:
            spec: The target backend, as the class's `xp` accepts it.

        Returns:
            This component, moved.
        """
        target = backends.get(spec)
        for name in self.ARRAYS:
            value = getattr(self, name, None)
            if value is not None and not isinstance(value, (int, float)):
                setattr(self, name, copied_between(self.backend, target, value))
        self.backend, self.xp = target, target.xp
        return self

    def _accept(self, x: Array, what: str = "inputs") -> Array:
        """`x` itself if it lives on this component's backend, else a TypeError that says how to move it."""
        return x if self.backend.owns(x) else self.backend.check(x, f"{self.label} {what}")

    def _accept_batch(self, x: Array, what: str = "inputs", features: int | None = None, dtype: Any = None) -> Array:
        """`x` as a float batch: a non-empty 2-d array of real numbers on this backend, cast to `dtype` (integers
        to the default float) before its values are checked (once per array)."""
        self._accept(x, what)
        _checks.batch(x, self, what=what, features=features)
        _checks.real_dtype(self.xp, x, self, what)
        if dtype is None and not _checks.is_kind(self.xp, x.dtype, "real floating"):
            dtype = self.backend.default_float
        return _checks.as_finite(self.backend, x, dtype, self, what)

    def _require_forward(self, dvalues: Array, attribute: str = "output") -> None:
        """A CallOrderError unless `forward` ran, and a ValueError unless `dvalues` is shaped like its output."""
        output = getattr(self, attribute, None)
        if output is None:
            raise CallOrderError(f"{self.label}.backward() was called before forward(); call forward(inputs) first")
        self._accept(dvalues, "gradient")
        if tuple(dvalues.shape) != tuple(output.shape):
            raise ValueError(
                f"{self.label}.backward() expected a gradient shaped like its last output {tuple(output.shape)}, "
                f"got {tuple(dvalues.shape)}; pass the next layer's dinputs from the same batch"
            )

    def __repr__(self) -> str:
        if defined_by_nnx(type(self)):
            return f"{type(self).__name__}()"
        cls: Any = type(self)
        kept = [(name, getattr(self, name, _ABSENT)) for name in _init_parameters(cls) if name != "xp"]
        return (
            f"{type(self).__name__}({', '.join(f'{name}={value!r}' for name, value in kept if value is not _ABSENT)})"
        )

    def saved_config(self) -> dict[str, Any]:
        """`get_config()` as a file records it.

        Returns:
            The config, with a dtype written as its canonical name ('float32') whatever the backend calls it.
        """
        config = plain_config(self.get_config())
        dtype = getattr(self, "dtype", None)
        if "dtype" in config and dtype is not None:
            config["dtype"] = _host.dtype_name(dtype)
        return config

    def host_arrays(self) -> dict[str, Any]:
        """Host copies of the arrays this component keeps, as files and copies store them.

        Returns:
            {name: NumPy array} for each of its `ARRAYS` that holds an array (NumPy scalars included).
        """
        arrays = {}
        for name in self.ARRAYS:
            value = getattr(self, name, None)
            if value is not None and hasattr(value, "shape") and hasattr(value, "dtype"):
                arrays[name] = self.backend.to_numpy(value)
        return arrays

    def __reduce__(self) -> tuple[Any, ...]:
        """`pickle` and `copy.deepcopy` go through what a file holds: the kind, the config as JSON and the arrays
        as safetensors bytes, rebuilt on the same backend; never a pickled module or class. A config that cannot
        round-trip (see `config_problems`) is refused first."""
        check_config(self, "copy.deepcopy() or pickle")
        arrays = safetensors.numpy.save(self.host_arrays())
        state = (self.kind(), json.dumps(self.saved_config()), self.backend.name, arrays)
        return (rebuilt, state)


def rebuilt(kind: str, config: str, backend: str, arrays: bytes) -> Component:
    """The component `Component.__reduce__` described (the class registered under `kind`, from its config)."""
    found = classes_named(kind.removeprefix(MAIN + ".")) if kind.startswith(MAIN + ".") else []
    cls = component_class(kind) or (found[0] if len(found) == 1 else None)
    if cls is None:
        raise TypeError(
            f"cannot rebuild an nnx component of kind {kind!r}: this program defines {len(found) or 'no'} class(es) "
            f"of that name; import the module that defines it (only it) first"
        )
    target = backends.get(backend)
    with _host.numpy_rng_kept():
        component = cls.from_config(json.loads(config), xp=target)
    for name, value in safetensors.numpy.load(arrays).items():
        setattr(component, name, target.asarray(value, dtype=value.dtype.name))
    return component


# Configs that round-trip -------------------------------------------------------------------------------------------


def plain_config(value: Any) -> Any:
    """A config (or one of its values) with NumPy scalars as Python numbers and tuples as lists, as JSON keeps it.

    Args:
        value: A config dict, or anything in one.

    Returns:
        The same values in plain Python types; anything else is returned as it is (for the JSON check to name).
    """
    if isinstance(value, dict):
        return {key: plain_config(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_config(item) for item in value]
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        return value.item()  # a NumPy scalar or 0-d host array: np.float32(0.3) -> 0.3
    return value


def check_config(component: Component, action: str) -> None:
    """Refuse a component whose config cannot round-trip, before anything is added, saved or copied.

    Args:
        component: The component.
        action: What is refused, for the message ('Model.add()', 'save', ...).

    Raises:
        TypeError: naming the component, each problem that `config_problems` finds, and its fix.
    """
    for name in component.CONFIG:  # np.float64(0.3) would promote float32 arrays in its arithmetic: keep 0.3
        value: Any = getattr(component, name, None)
        if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
            setattr(component, name, value.item())
    problems = config_problems(component)
    if problems:
        raise TypeError(
            f"{action} refused {component.label}: a file or a copy could not rebuild it as it is. " + " ".join(problems)
        )


def config_problems(component: Component) -> list[str]:
    """What keeps `component` from being saved and loaded, copied or pickled as it is, one sentence each with the fix.

    Every constructor argument (but `xp`, `*args` and `**kwargs`) must be in its config (`CONFIG`), under its own
    name, and the config must be JSON once NumPy scalars become Python numbers. A class that defines its own
    `get_config` or `from_config` is checked by rebuilding: `from_config(get_config())` must give the same config.

    Args:
        component: The component to check.

    Returns:
        The problems found; an empty list when it round-trips.
    """
    name = type(component).__name__
    try:
        config = component.get_config()
    except (AttributeError, TypeError, ValueError, KeyError) as error:
        return [
            f"{name}.get_config() raised {type(error).__name__}: {error}. Keep each argument that {name}.CONFIG "
            f"names in an attribute of the same name."
        ]
    if not isinstance(config, dict) or not all(isinstance(key, str) for key in config):
        return [f"{name}.get_config() returned {_checks.describe(config)}; return a dict {{argument name: value}}."]
    plain = plain_config(config)
    problems = _json_problems(name, plain) + _argument_problems(type(component), plain)
    if not problems and _config_definer(type(component)) is not Component and not defined_by_nnx(type(component)):
        problems += _round_trip_problems(component, plain)
    return problems


def _json_problems(name: str, config: dict[str, Any]) -> list[str]:
    problems = []
    for key, value in config.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            problems.append(
                f"Its config {key} is {_shown(value)}, which a file cannot hold; keep {name}'s "
                f"{key} as a number, string, boolean, None, or a list or dict of them."
            )
    return problems


def _shown(value: Any) -> str:
    return _checks.describe(value) if hasattr(value, "shape") else f"{value!r} ({type(value).__name__})"


def _config_definer(cls: type) -> type:
    """The class whose `get_config`/`from_config` this class uses: Component's own, or the nearest override."""
    return next(base for base in cls.__mro__ if "get_config" in vars(base) or "from_config" in vars(base))


@functools.cache
def _init_parameters(cls: Any) -> dict[str, inspect.Parameter]:
    """`cls.__init__`'s parameters, but `self` (read once per class: a repr and a label use them)."""
    return dict(list(inspect.signature(cls.__init__).parameters.items())[1:])


def _argument_problems(cls: Any, config: dict[str, Any]) -> list[str]:
    """Constructor arguments missing from the config; with Component's `from_config`, names it cannot pass."""
    name, parameters = cls.__name__, _init_parameters(cls)
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    named = [key for key, parameter in parameters.items() if parameter.kind not in variadic and key != "xp"]
    definer = _config_definer(cls)
    excused = set() if definer is Component else set(_init_parameters(definer))  # the definer's to rebuild
    missing = [key for key in named if key not in config and key not in excused]
    problems = []
    if missing:
        listed = ", ".join(map(repr, missing))
        problems.append(
            f"Its __init__ takes {listed}, which its config does not record ({name}.CONFIG is {cls.CONFIG!r}), so "
            f"load() and copies would rebuild it with the default; add {listed} to {name}.CONFIG and keep each in "
            f"an attribute of the same name (self.{missing[0]})."
        )
    if definer is Component:
        problems += _keyword_problems(name, parameters, config)
    return problems


def _keyword_problems(name: str, parameters: dict[str, inspect.Parameter], config: dict[str, Any]) -> list[str]:
    """What `Component.from_config` (`cls(**config, xp=xp)`) could not pass to this `__init__`."""
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
        return []
    problems = []
    if "xp" not in parameters:
        problems.append(
            f"Its __init__ takes no xp=, which load() and copies pass; add `*, xp=None` to {name}.__init__ and "
            f"call super().__init__(xp)."
        )
    keyword = {key for key, parameter in parameters.items() if parameter.kind is not inspect.Parameter.POSITIONAL_ONLY}
    unknown = [key for key in config if key not in keyword]
    if unknown:
        listed = ", ".join(map(repr, unknown))
        problems.append(
            f"Its config names {listed}, which {name}.__init__ does not take by name, so load() could not rebuild "
            f"it; make {name}.CONFIG name only arguments of __init__ (by keyword)."
        )
    return problems


def _round_trip_problems(component: Component, config: dict[str, Any]) -> list[str]:
    """Rebuild with `from_config(get_config())` (RNGs left as they were) and compare the configs."""
    cls, name, backend = type(component), type(component).__name__, component.backend
    state = backend.rng_state()
    try:
        with _host.numpy_rng_kept():
            again = plain_config(cls.from_config(json.loads(json.dumps(config)), xp=backend).get_config())
    except (AttributeError, TypeError, ValueError, KeyError) as error:
        return [
            f"{name}.from_config(get_config()) raised {type(error).__name__}: {error}. Make from_config take what "
            f"get_config returns."
        ]
    finally:
        backend.set_rng_state(state)
    differing = sorted(key for key in {*config, *again} if config.get(key) != again.get(key))
    if not differing:
        return []
    listed = ", ".join(f"{key} {config.get(key)!r} -> {again.get(key)!r}" for key in differing)
    return [
        f"{name}.from_config(get_config()) rebuilds it with another config ({listed}); make get_config() return "
        f"every constructor argument as __init__ takes it, and from_config take them back."
    ]


class RunningMean(Component):
    """A component that averages per-sample values over all the batches of a pass (an epoch), on the device.

    The base of `nnx.losses.Loss` and `nnx.metrics.Accuracy`: their `calculate` adds each batch to the sums,
    `new_pass()` starts again.

    Args:
        xp: The backend to compute on: a backend name, an array module, an `nnx.backends.Backend`, or None for
            the current one.
    """

    def __init__(self, *, xp: BackendSpec = None) -> None:
        super().__init__(xp)
        self.new_pass()

    def new_pass(self) -> None:
        """Reset the running sums, at the start of an epoch (the book's `new_pass`)."""
        self.accumulated_sum: Any = 0
        self.accumulated_count = 0

    def _accumulate(self, values: Array) -> None:
        with self.backend.quiet_float_errors():  # finite values may sum past the dtype: inf, which divergence reports
            total = self.xp.sum(values)
        self.add_to_pass(total, math.prod(values.shape))

    def add_to_pass(self, total: Array, count: int) -> None:
        """Add a batch's precomputed sum to the epoch's sums (what a compiled training step does).

        Args:
            total: The sum of the batch's per-sample values: a 0-d array on this backend, or a number.
            count: How many values `total` adds up.
        """
        self.accumulated_sum = self.accumulated_sum + total
        self.accumulated_count += count

    def _accumulated_mean(self) -> Array:
        if self.accumulated_count == 0:
            raise RuntimeError(f"{self!r} has no batches to average: call calculate() after new_pass()")
        return self.accumulated_sum / self.accumulated_count

    def to(self, spec: BackendSpec) -> Self:
        """Move to another backend, starting a new pass (the running sums are dropped).

        Args:
            spec: The target backend: a backend name, an array module, an `nnx.backends.Backend`, or None.

        Returns:
            This component, moved.
        """
        self.new_pass()
        return super().to(spec)


def copied_between(source: Backend, target: Backend, value: Array) -> Array:
    """`value` copied from backend `source` to `target` through the host, in its own dtype (a backend without that
    dtype says so rather than rounding float64 to float32)."""
    host = source.to_numpy(value)
    return target.asarray(host, dtype=host.dtype)
