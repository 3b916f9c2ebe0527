"""What a report draws: sections of text, tables and figures. Studies and analyses build them; the report
renders them without knowing which study they came from."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ReportFigure", "ReportTable", "Section"]


@dataclass(frozen=True)
class ReportFigure:
    title: str
    caption: str
    png: bytes
    name: str  # file stem when figures are exported as PNG


@dataclass(frozen=True)
class ReportTable:
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    text: tuple[str, ...] = ()
    tables: tuple[ReportTable, ...] = ()
    figures: tuple[ReportFigure, ...] = ()
