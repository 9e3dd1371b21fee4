"""Small Qt pieces of the Registration widget: group boxes, compact combo boxes, the metrics
table (built, filled and read back) and the scrolling frame of the dock."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLayout,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)


def compact(combo: QWidget) -> None:
    """Let a combo box shrink below its longest entry (long layer names or method titles
    would otherwise widen the whole dock)."""
    if isinstance(combo, QComboBox):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(10)


def button(
    text: str, slot: Callable[[], object], enabled: bool = True, tooltip: str = ""
) -> QPushButton:
    """A push button calling ``slot`` (with no arguments) when clicked."""
    widget = QPushButton(text)
    widget.setEnabled(enabled)
    if tooltip:
        widget.setToolTip(tooltip)
    widget.clicked.connect(lambda *_: slot())
    return widget


def status_label(text: str) -> QLabel:
    """A wrapping, selectable (copyable) status line."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def row(*widgets: QWidget) -> QHBoxLayout:
    """``widgets`` side by side."""
    layout = QHBoxLayout()
    for widget in widgets:
        layout.addWidget(widget)
    return layout


def column(*items: QWidget | QLayout, margins: int | None = 0) -> QWidget:
    """A widget holding ``items`` (widgets or layouts) one below the other (``margins`` in
    pixels; None keeps the style's)."""
    widget = QWidget()
    layout = QVBoxLayout(widget)
    if margins is not None:
        layout.setContentsMargins(margins, margins, margins, margins)
    for item in items:
        if isinstance(item, QLayout):
            layout.addLayout(item)
        else:
            layout.addWidget(item)
    return widget


def group(title: str, widget: QWidget) -> QGroupBox:
    """``widget`` in a titled frame."""
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    layout.setContentsMargins(4, 4, 4, 4)
    layout.addWidget(widget)
    return box


def section(title: str, widget: QWidget, expanded: bool = False) -> QWidget:
    """``widget`` under a title that folds it away (collapsed unless ``expanded``)."""
    from superqt import QCollapsible

    box = QCollapsible(title)
    box.addWidget(widget)
    if expanded:
        box.expand(animate=False)
    else:
        box.collapse(animate=False)
    return box


def scrolling(parent: QWidget, content: QWidget) -> None:
    """Fill ``parent`` with ``content`` in a vertical scroll area: the dock does not scroll by
    itself, and a short screen must still reach every control."""
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setWidget(content)
    outer = QVBoxLayout(parent)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)


def metrics_table(header: Sequence[str] = ("figure", "before", "after")) -> QTableWidget:
    """A read-only table whose columns are always as wide as their longest text (never cut: a
    dock narrower than the table scrolls it sideways) and whose height fits its rows (the dock
    scrolls, not the table)."""
    table = QTableWidget(0, len(header))
    table.setHorizontalHeaderLabels(list(header))
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.setWordWrap(False)
    table.setTextElideMode(Qt.TextElideMode.ElideNone)
    table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(False)
    _fit_height(table)
    return table


def _fit_height(table: QTableWidget) -> None:
    """Make ``table`` exactly as tall as its header, rows and a horizontal scroll bar."""
    height = table.horizontalHeader().sizeHint().height() + 2 * table.frameWidth()
    height += sum(table.rowHeight(r) for r in range(table.rowCount()))
    height += table.horizontalScrollBar().sizeHint().height()
    table.setFixedHeight(height)


def fill_table(
    table: QTableWidget, rows: Sequence[Sequence[str]], header: Sequence[str] | None = None
) -> None:
    """Show ``rows`` of text in ``table`` (``header`` replaces the column titles), then fit the
    columns to their text and the height to the rows. Text is left-aligned: a long entry (an
    affine row) widens its column, and a short number right-aligned in that column would sit
    past the dock's edge."""
    if header is not None:
        table.setColumnCount(len(header))
        table.setHorizontalHeaderLabels(list(header))
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            table.setItem(r, c, item)
    table.resizeColumnsToContents()
    table.resizeRowsToContents()
    _fit_height(table)


def cut_cells(table: QTableWidget) -> list[str]:
    """Texts (headers included) wider than their column: what a reader would see cut."""
    metrics = table.fontMetrics()
    cut = []
    for c in range(table.columnCount()):
        width = table.columnWidth(c)
        header = table.horizontalHeaderItem(c)
        texts = [header.text() if header else ""]
        texts += [table.item(r, c).text() for r in range(table.rowCount()) if table.item(r, c)]
        cut += [t for t in texts if metrics.horizontalAdvance(t) > width]
    return cut


def table_text(table: QTableWidget) -> list[tuple[str, ...]]:
    """The table's text, row by row."""
    return [
        tuple(
            (table.item(r, c).text() if table.item(r, c) else "")
            for c in range(table.columnCount())
        )
        for r in range(table.rowCount())
    ]


def ask(parent: QWidget, title: str, text: str) -> bool:
    """A yes/no question in a modal box; True for yes."""
    from qtpy.QtWidgets import QMessageBox

    answer = QMessageBox.question(parent, title, text)
    return answer == QMessageBox.StandardButton.Yes
