"""The Registration widget's save buttons: metrics CSV, transform, one-page report.

A mixin of :class:`._widget.RegistrationWidget` (kept apart so the widget module stays small):
each action has a method that writes to a given destination (for scripts and tests) and an
``_ask_*`` slot that asks for the destination with a dialog, writes, and reports in the status
line or as one error notification (``self._error``). The writing itself is :mod:`._save`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import QFileDialog

from ..result import RegistrationResult
from ..volume import InputError
from . import _save, _ui

# our own question (which names every file in the way) replaces the dialog's
NO_QT_CONFIRM = QFileDialog.Option.DontConfirmOverwrite


class SaveActions:
    """Save actions for a widget with ``result``, ``_inputs_used`` (the job of the run shown),
    ``_transform_folder``, ``_set_status(text)`` and ``_error(text)``."""

    result: RegistrationResult | None
    _inputs_used: Any
    _transform_folder: str

    def _set_status(self, text: str) -> None:  # pragma: no cover - the widget's
        raise NotImplementedError

    def _error(self, text: str) -> None:  # pragma: no cover - the widget's
        raise NotImplementedError

    def _last_result(self) -> RegistrationResult:
        if self.result is None:
            raise InputError("no registration result to save yet")
        return self.result

    # ----------------------------------------------------------------- to a destination

    def save_csv(self, path: str | Path, overwrite: bool = False) -> list[Path]:
        """Write the last run's metrics as CSV (and ``<name>_labels.csv`` with per-label rows,
        label names included)."""
        return _save.save_metrics_csv(self._last_result(), path, overwrite)

    def save_transform(self, folder: str | Path, overwrite: bool = False) -> list[Path]:
        """Write the last run's transform into ``folder`` (:func:`._save.save_transform`)."""
        result = self._last_result()
        self._save_notes: list[str] = []
        return _save.save_transform(result, folder, overwrite, self._save_notes.append)

    def save_report(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the last run's one-page PNG report (:func:`napari_deepreg.qa.report_png`) at
        ``path`` (``.png`` appended when missing)."""
        result = self._last_result()
        job = self._inputs_used
        if job is None:
            raise InputError("the inputs of the last run are gone; run the registration again")
        return _save.save_report(result, job, path, overwrite)

    # ----------------------------------------------------------------- dialogs

    def _with_consent(self, save: Callable[[bool], Any]) -> Any:
        """``save(overwrite=False)``; when files of the user's are in the way (the refusal names
        ``overwrite``: nothing was written), ask, and ``save(True)`` if the user agrees."""
        try:
            return save(False)
        except InputError as exc:
            if "overwrite" not in str(exc) or not self.confirm_overwrite(str(exc)):
                raise
        return save(True)

    def _ask_save_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save metrics", "registration_metrics.csv", "CSV (*.csv)",
            options=NO_QT_CONFIRM,
        )
        if not path:
            return
        try:
            written = self._with_consent(lambda overwrite: self.save_csv(path, overwrite))
        except (OSError, ValueError) as exc:
            self._error(f"could not save the metrics: {exc}")
            return
        self._set_status("saved " + ", ".join(str(p) for p in written))

    def choose_report_path(self) -> str:
        """Ask where to save the report ("" when the user cancels); tests replace it."""
        path, _ = QFileDialog.getSaveFileName(
            self, "Save report", "registration_report.png", "PNG image (*.png)",
            options=NO_QT_CONFIRM,
        )
        return path

    def _ask_save_report(self) -> None:
        path = self.choose_report_path()
        if not path:
            return
        try:
            written = self._with_consent(lambda overwrite: self.save_report(path, overwrite))
        except (OSError, ValueError, RuntimeError) as exc:  # never take the viewer down
            message = f"could not save the report: {exc}"
            self._set_status(message)
            self._error(message)
            return
        self._set_status(f"saved the report to {written}")

    def choose_transform_folder(self) -> str:
        """Ask for the folder to save the transform in ("" when the user cancels).

        A method of its own so that tests (and scripts) can replace the dialog.
        """
        return QFileDialog.getExistingDirectory(
            self, "Save transform into folder", self._transform_folder
        )

    def confirm_overwrite(self, message: str) -> bool:
        """Ask before replacing files the plugin did not write (tests replace this dialog)."""
        return _ui.ask(self, "Replace files?", message + "\n\nReplace them?")

    def _ask_save_transform(self) -> None:
        folder = self.choose_transform_folder()
        if not folder:
            return
        try:
            written = self._with_consent(
                lambda overwrite: self.save_transform(folder, overwrite))
        except (OSError, ValueError, RuntimeError) as exc:  # never take the viewer down
            message = f"could not save the transform: {exc}"
            self._set_status(message)
            self._error(message)
            return
        self._transform_folder = str(folder)
        text = f"saved {', '.join(p.name for p in written)} to {folder}"
        if self.result is not None and self.result.affine is None:
            text += " (no affine stage in this method, so no affine.tfm)"
        self._set_status("; ".join([text, *self._save_notes]))


__all__ = ["SaveActions"]
