"""Inert stand-ins for the modules a student's file imports that the sandbox lacks (matplotlib, tqdm, the course's
dataset loader): loaded by grading/runner.py inside the sandbox, where attributes, calls and subclassing of them
all work and do nothing.

    plt = StandInModule("matplotlib.pyplot"); plt.plot([1, 2]); plt.show()     # nothing happens
    class Net(StandInModule("torch.nn").Module): ...                            # derives from StandInBase
    np.asarray(plt.figure())                                                    # TypeError: a stand-in, not an array
"""

import types


def stand_in(owner, name):
    """The stand-in for attribute ``name`` of a stand-in (dunder names are missing: the import system asks)."""
    if name.startswith("__"):
        raise AttributeError(name)
    return StandIn(f"{owner}.{name}")


class StandInBase:
    """What a class derived from a stand-in (class Net(nn.Module)) derives from instead: takes any arguments."""

    __init__ = lambda self, *args, **kwargs: None  # noqa: E731


class StandIn:
    """An inert stand-in: attributes, calls and items give stand-ins; iterates as empty; false; derived from
    (class Net(nn.Module) derives from StandInBase); never an array."""

    def __init__(self, name):
        object.__setattr__(self, "_name", name)

    def __array__(self, *args, **kwargs):
        raise TypeError(f"{self._name} is a stand-in (its module cannot be imported in the sandbox), not an array")

    __getattr__ = lambda self, name: stand_in(self._name, name)  # noqa: E731
    __call__ = lambda self, *args, **kwargs: StandIn(f"{self._name}()")  # noqa: E731
    __getitem__ = lambda self, key: StandIn(f"{self._name}[]")  # noqa: E731
    __setattr__ = __setitem__ = lambda self, *args: None  # noqa: E731
    __iter__ = lambda self: iter(())  # noqa: E731
    __len__ = lambda self: 0  # noqa: E731
    __enter__ = lambda self: self  # noqa: E731
    __exit__ = lambda self, *exc: False  # noqa: E731
    __mro_entries__ = lambda self, bases: (StandInBase,)  # noqa: E731
    __repr__ = lambda self: f"<stand-in {self._name}>"  # noqa: E731


class StandInModule(types.ModuleType):
    """A module the sandbox cannot import: any public attribute is a stand-in; a package, so submodules are too."""

    __path__ = []
    __getattr__ = lambda self, name: stand_in(self.__name__, name)  # noqa: E731
