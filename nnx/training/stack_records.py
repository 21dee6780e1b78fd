"""What a stack of `nnx.train_many` records while it trains: every epoch's host metrics, how each model ended, its
last completed epoch (what an interrupted stack writes back), and each model's `History` built from them."""

from __future__ import annotations

import math

from nnx.backends import _host
from nnx.callbacks.history import History
from nnx.errors import DivergenceError
from nnx.training.stack_plan import OWNER


class Completed:
    """A stack's last completed epoch: its state, the models in it (stack position -> position in the plan) and
    its number (0: none yet)."""

    def __init__(self, state: dict, members: list | dict, epoch: int):
        self.state, self.epoch = state, epoch
        self.members = members if isinstance(members, dict) else dict(enumerate(members))


class StackRecords:
    """Every epoch's host metrics of a stack, kept as they came (one block per epoch: no work per model while it
    trains), how each model ended, and the Histories built from them at the end."""

    def __init__(self, chunk: list[int], validation: bool):
        self.blocks: list[tuple] = []  # (epoch, members, host rows, validation rows or None, diverged positions)
        self.chunk, self.validation = chunk, validation  # chunk: the models' positions in train_many's list
        self.final: list[dict | None] = [None] * len(chunk)
        self.errors: dict[int, DivergenceError] = {}
        self.n_diverged = 0
        self.completed: Completed | None = None

    def name(self, member: int) -> str:
        """How messages name the model at `member` of this stack: by its position in train_many's list."""
        return f"{OWNER} models[{self.chunk[member]}]"

    def drop_after(self, epoch: int) -> None:
        """Forget the epochs after `epoch` (an epoch an error interrupted before it completed)."""
        self.blocks = [block for block in self.blocks if block[0] <= epoch]

    def add(self, epoch: int, members: list, host, validation) -> list[int]:
        """Record an epoch's host rows (an (M, 5) host array: accuracy, data loss, regularization loss, learning
        rate, finite probe); returns the stack positions of the models that are not finite (not recorded). The
        probe (loss plus every parameter times 0) is checked once for all models, then per model only when it
        fails."""
        diverged = []
        if not math.isfinite(float(host[:, 4].sum())):
            diverged = [position for position, value in enumerate(host[:, 4].tolist()) if not math.isfinite(value)]
        self.blocks.append((epoch, members, host, validation, frozenset(diverged)))
        return diverged

    def add_finite(self, epoch: int, members: list, host) -> None:
        """Record the host rows of an epoch known to be finite (inside a span), as `add` takes them, unchecked."""
        self.blocks.append((epoch, members, host, None, frozenset()))

    def losses(self) -> list[float]:
        """The last epoch's losses of the models recorded in it."""
        _, _, host, _, diverged = self.blocks[-1]
        losses = (host[:, 1] + host[:, 2]).tolist()
        return [loss for position, loss in enumerate(losses) if position not in diverged]

    def last_loss(self, member: int) -> float | None:
        """The loss of `member`'s last recorded epoch (before the current one), or None."""
        if len(self.blocks) < 2:
            return None
        _, members, host, _, _ = self.blocks[-2]
        row = host[members.index(member)]
        return float(row[1] + row[2])

    def diverged(self, member: int, epoch: int, step: int) -> DivergenceError:
        last = self.last_loss(member)
        self.final[member] = {"diverged": True, "epoch": epoch, "step": step, "loss": last}
        self.n_diverged += 1
        shown = "none was finite" if last is None else f"{last:.6g}"
        self.errors[member] = DivergenceError(
            f"training diverged at epoch {epoch}: the loss or a parameter became NaN or infinite (last finite loss: "
            f"{shown}). The parameters are restored to the last finite epoch; lower the learning rate or add decay",
            epoch=epoch,
            step=step,
            last_finite_loss=last,
        )
        return self.errors[member]

    def stopped(self, member: int, epoch: int) -> None:
        """Record that `train_many`'s stop_models hook stopped `member` after `epoch` (which it completed)."""
        self.final[member] = {"stopped": True, "epoch": epoch}

    def raised(self, member: int, epoch: int) -> DivergenceError:
        """The error `on_divergence="raise"` raises for the diverged model at `member`."""
        error = self.errors[member]
        return DivergenceError(
            f"{self.name(member)}: {error}; every model holds its last finite state, and this error's .histories "
            f"hold their Histories",
            epoch=epoch,
            step=error.step,
            last_finite_loss=error.last_finite_loss,
        )

    def histories(self) -> list[History]:
        """One History per model: its epochs' columns and its final metrics (the last epoch's, unless it diverged)."""
        columns: list[list[list[float]]] = [[[] for _ in range(5)] for _ in self.final]
        validations: list[dict] = [{} for _ in self.final]
        for run in self._runs():
            members, diverged = run[0][1], run[-1][4]
            per_model = _host.per_model_columns([host for _, _, host, _, _ in run])
            for position, member in enumerate(members):
                kept = len(run) - (position in diverged)  # a model that diverged misses the run's last epoch
                for column, values in zip(columns[member], per_model[position], strict=True):
                    column += values[:kept]
                for epoch, _, _, validation, _ in run[:kept]:
                    if validation is not None:
                        validations[member][epoch] = validation[position]
        return [self._history(columns[member], validations[member], final) for member, final in enumerate(self.final)]

    def _runs(self) -> list[list[tuple]]:
        """The blocks cut into runs with the same members (a model leaves the stack after the epoch it diverged
        in, so it can miss only a run's last epoch)."""
        runs: list[list[tuple]] = []
        for block in self.blocks:
            if runs and runs[-1][-1][1] is block[1] and not runs[-1][-1][4]:
                runs[-1].append(block)
            else:
                runs.append([block])
        return runs

    def _history(self, columns: list, validation: dict, final: dict | None) -> History:
        accuracy, data_loss, reg_loss, lr, loss = columns
        epochs = list(range(1, len(accuracy) + 1))  # a model is recorded every epoch until it stops
        named = {
            "loss": loss,
            "data_loss": data_loss,
            "reg_loss": reg_loss,
            "accuracy": accuracy,
            "lr": lr,
        }
        if self.validation:
            named["val_loss"] = [validation[epoch][0] if epoch in validation else None for epoch in epochs]
            named["val_accuracy"] = [validation[epoch][1] if epoch in validation else None for epoch in epochs]
        if final is not None and final.get("stopped"):
            final = {**_final(named), **final}  # its last epoch's metrics, and where it stopped
        return History.from_columns(epochs, named, _final(named) if final is None else final)


def _final(columns: dict) -> dict:
    """The final metrics of a model that finished: its last epoch's (validation only where measured)."""
    if not columns["loss"]:
        return {}
    final = {name: columns[name][-1] for name in ("loss", "data_loss", "reg_loss", "accuracy", "lr")}
    if columns.get("val_loss", [None])[-1] is not None:
        final.update(val_loss=columns["val_loss"][-1], val_accuracy=columns["val_accuracy"][-1])
    return final
