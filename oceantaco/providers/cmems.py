"""Copernicus Marine products in their native layout ``<PRODUCT_ID>/<DATASET_ID>_<version>/YYYY/MM/<file>``.

The same layout is used by the upstream service, by a mirror (``OCEANTACO_CMEMS_MIRROR``) and by the raw
area (under the product's ``raw_dir``), so one set of functions finds a day's files in all three.
"""

from __future__ import annotations

import datetime as dt
import re

from oceantaco.catalog import Dataset, Product
from oceantaco.providers import DayPlan, RemoteFile, register
from oceantaco.settings import Settings
from oceantaco.storage import Storage


def _prefix(base: str, *parts: str) -> str:
    return "/".join(p for p in (base, *parts) if p)


def dataset_versions(tree: Storage, base: str, dataset: Dataset) -> list[str]:
    """Version folders (``YYYYMM``) of ``dataset`` present under ``base``, oldest first."""
    pattern = re.compile(re.escape(dataset.dataset_id) + r"_(\d{6})")
    names = tree.list_dirs(_prefix(base, dataset.product_id))
    return sorted(m.group(1) for name in names if (m := pattern.fullmatch(name)))


def day_files(tree: Storage, base: str, dataset: Dataset, day: dt.date, version: str) -> list[str]:
    """Keys of ``day``'s files in one version folder; month folders first, year-only folders (SMOS) too."""
    regex = dataset.file_regex(day)
    version_dir = _prefix(base, dataset.product_id, f"{dataset.dataset_id}_{version}")
    for folder in (f"{version_dir}/{day:%Y}/{day:%m}", f"{version_dir}/{day:%Y}"):
        found = [k for k in tree.list(folder) if regex.match(k.rsplit("/", 1)[-1])]
        if found:
            return found
    return []


def choose_version(versions: list[str], dataset: Dataset, settings: Settings) -> str | None:
    pinned = settings.pinned_versions.get(dataset.dataset_id)
    if pinned is not None:
        return pinned if pinned in versions else None
    return versions[-1] if versions else None


@register
class CopernicusMarine:
    """CMEMS through a native-layout mirror; the copernicusmarine toolbox transport is not implemented yet."""

    name = "cmems"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def source(self) -> Storage:
        if not self.settings.cmems_mirror:
            raise NotImplementedError(
                "Copernicus Marine downloads through the copernicusmarine toolbox are not implemented yet; "
                "set OCEANTACO_CMEMS_MIRROR to a tree laid out like the native files"
            )
        return Storage(self.settings.cmems_mirror)

    def plan(self, product: Product, days: list[dt.date]) -> list[DayPlan]:
        source = self.source
        versions = {
            ds.dataset_id: choose_version(dataset_versions(source, "", ds), ds, self.settings)
            for ds in product.datasets
        }
        plans = []
        for day in days:
            files = []
            for dataset in product.datasets_for(day):
                version = versions[dataset.dataset_id]
                if version is None:
                    continue
                for key in day_files(source, "", dataset, day, version):
                    files.append(RemoteFile(key, f"{product.raw_dir}/{key}", source.size(key)))
            plans.append(DayPlan(product.token, day, tuple(files)))
        return plans

    def raw_inputs(self, product: Product, day: dt.date, raw: Storage) -> list[str]:
        """Per dataset the newest version folder holding the day, in it the newest production of each file.

        A product made of several files per day (hourly wind) keeps the newest production of every time
        step; without any, the original pipeline's aggregated daily file (``daily_input``) is accepted.
        """
        chosen: list[str] = []
        for dataset in product.datasets_for(day):
            regex = dataset.file_regex(day)
            for version in reversed(dataset_versions(raw, product.raw_dir, dataset)):
                newest: dict[str, str] = {}
                # File names end in the production date, so in name order the last one is the newest.
                for key in sorted(day_files(raw, product.raw_dir, dataset, day, version)):
                    found = regex.match(key.rsplit("/", 1)[-1])
                    newest[found.groupdict().get("step") or ""] = key
                if newest:
                    chosen.extend(newest[step] for step in sorted(newest))
                    break
        if not chosen and product.daily_input:
            daily = f"{product.raw_dir}/{product.daily_input_name(day)}"
            chosen = [daily] if raw.exists(daily) else []
        return chosen
