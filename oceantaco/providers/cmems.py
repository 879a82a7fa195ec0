"""Copernicus Marine products in their native layout ``<PRODUCT_ID>/<DATASET_ID>_<version>/YYYY/MM/<file>``.

The same layout is used by the upstream service, by a mirror (``OCEANTACO_CMEMS_MIRROR``) and by the raw
area (under the product's ``raw_dir``), so one set of functions finds a day's files in all three.

Two transports fill the raw area; both go through the generic per-file :func:`oceantaco.providers.fetch`
(skip what the raw root holds with the right size, stream the rest, publish atomically):

* **mirror** (``OCEANTACO_CMEMS_MIRROR`` set): any fsspec tree with the native layout, listed and copied.
* **toolbox** (otherwise): the ``copernicusmarine`` toolbox. ``plan`` asks ``describe`` for a dataset's
  versions (the newest released one unless pinned in ``OCEANTACO_PINNED_VERSIONS``), then lists each
  month a span touches once per dataset with ``get(dry_run=True)`` and a regex selecting that month's file
  names, so a request's size never grows with the range; the files of each day are picked from that list.
  The provider's ``source`` is a :class:`ToolboxSource`: when ``fetch`` finds a file missing from the raw
  root, it downloads just that file with ``get(file_list=[file])`` (a HEAD and a GET, no listing of the
  dataset) into a scratch directory, checks its MD5 ETag, and hands ``fetch`` an open handle to stream
  into the raw root. Products whose catalog variables name depth levels (GLORYS) are instead cut with
  ``subset`` to those levels and variables and written under the native file name.

Credentials are the toolbox's own environment variables (``COPERNICUSMARINE_SERVICE_USERNAME`` and
``COPERNICUSMARINE_SERVICE_PASSWORD``); they are never passed, logged or put in an error message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import random
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from oceantaco.catalog import Dataset, Product, load_catalog
from oceantaco.providers import DayPlan, RemoteFile, is_transient, note_retry, register, with_retries
from oceantaco.settings import Settings
from oceantaco.storage import Storage

logger = logging.getLogger(__name__)

CREDENTIAL_VARIABLES = ("COPERNICUSMARINE_SERVICE_USERNAME", "COPERNICUSMARINE_SERVICE_PASSWORD")
_BACKOFF_CAP_SECONDS = 60.0
_VERSION_LABEL = re.compile(r"\d{6}")
_MD5_ETAG = re.compile(r'^"?([0-9a-f]{32})"?$')  # multipart uploads have "<md5>-<parts>" ETags: not an MD5
# The toolbox adds the user name to S3 request URLs for monitoring; botocore puts URLs in its messages.
_USER_IN_URL = re.compile(r"(x-cop-user=)[^&\s\"']+")
T = TypeVar("T")
_sleep = time.sleep  # module-level so tests can record the backoff instead of waiting


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


def _listed_size(source: Storage, key: str) -> int | None:
    """Size of a file just listed, None when it is gone; a transient failure raises, to be retried.

    ``Storage.size`` reads any FileNotFoundError as "no such object", but fsspec's HTTP also raises it when
    the HEAD and the GET for the size were both answered 503.
    """
    try:
        info = source.fs.info(source.full_path(key))
    except FileNotFoundError as exc:
        if is_transient(exc):
            raise
        return None
    size = info.get("size")
    return int(size) if size is not None and info.get("type") == "file" else None


def choose_version(versions: list[str], dataset: Dataset, settings: Settings) -> str | None:
    pinned = settings.pinned_versions.get(dataset.dataset_id)
    if pinned is not None:
        return pinned if pinned in versions else None
    return versions[-1] if versions else None


def depth_levels(product: Product) -> dict[float, tuple[str, ...]] | None:
    """Upstream variables to cut per depth level (m) for products whose variables name levels, else None.

    Variables without a level (sea surface height) go with the shallowest level.
    """
    depths = sorted({spec.depth_m for spec in product.variables.values() if spec.depth_m is not None})
    if not depths:
        return None
    levels: dict[float, list[str]] = {depth: [] for depth in depths}
    for name, spec in product.variables.items():
        level = levels[spec.depth_m if spec.depth_m is not None else depths[0]]
        if (spec.source or name) not in level:
            level.append(spec.source or name)
    return {depth: tuple(names) for depth, names in levels.items()}


# --- toolbox transport -------------------------------------------------------------------------------


class CmemsCredentialsError(PermissionError):
    """Copernicus Marine credentials are missing or refused; retrying cannot help."""


class CmemsDatasetError(ValueError):
    """A dataset or version the catalog or the settings ask for is not offered upstream."""


class CmemsTransientError(ConnectionError):
    """A toolbox call kept failing on errors that may pass (timeouts, dropped connections, 429/5xx)."""


def require_credentials(product: str) -> None:
    """Fail before any request when the toolbox's credential variables are not set.

    Without them the toolbox would fall back to an interactive prompt, which hangs or aborts in a pod.
    """
    missing = [name for name in CREDENTIAL_VARIABLES if not os.environ.get(name)]
    if missing:
        raise CmemsCredentialsError(
            f"{product}: Copernicus Marine needs an account: set {' and '.join(missing)} "
            "(or OCEANTACO_CMEMS_MIRROR to copy from a mirror of the native files)"
        )


def redact(text: str) -> str:
    """``text`` without the Copernicus Marine user name and password."""
    for name in CREDENTIAL_VARIABLES:
        value = os.environ.get(name)
        if value and len(value) >= 3:  # replacing a one- or two-letter name would garble the message
            text = text.replace(value, "***")
    return _USER_IN_URL.sub(r"\1***", text)


def _http_status(error: BaseException) -> int | None:
    response: Any = getattr(error, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        code = str(response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "NoSuchBucket", "NotFound"):
            return 404
        if code in ("AccessDenied", "Forbidden"):
            return 403
        if code in ("SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded"):
            return 429
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status else (int(code) if code.isdigit() else None)
    status = getattr(response, "status_code", None)  # requests HTTPError
    return int(status) if status else None


def _why_permanent(error: BaseException) -> str | None:
    """``"credentials"``, ``"dataset"`` or ``"missing"`` when retrying cannot fix ``error``, else None."""
    import copernicusmarine as cm
    from copernicusmarine.core_functions.exceptions import CoordinatesOutOfDatasetBounds

    if isinstance(error, cm.InvalidUsernameOrPassword | CmemsCredentialsError):
        return "credentials"
    request_errors = (
        cm.DatasetNotFound,
        cm.DatasetVersionNotFound,
        cm.DatasetVersionPartNotFound,
        cm.ProductNotFound,
        cm.ServiceNotAvailable,
        cm.ServiceNotSupported,
        cm.ServiceDoesNotExistForCommand,
        cm.VariableDoesNotExistInTheDataset,
        cm.FormatNotSupported,
        CmemsDatasetError,
        KeyError,  # get/subset report a dataset missing from the catalogue as a KeyError
    )
    if isinstance(error, request_errors):
        return "dataset"
    if isinstance(error, FileNotFoundError | CoordinatesOutOfDatasetBounds):
        return "missing"
    if isinstance(error, ValueError):
        # The toolbox reports an unreachable catalogue as a ValueError about the internet connection.
        return None if "internet connection" in str(error) else "dataset"
    status = _http_status(error)
    if status == 401:
        return "credentials"
    if status in (403, 404):
        return "missing"
    if status is not None and 400 <= status < 500 and status not in (408, 429):
        return "dataset"
    return None


def _permanent_error(product: str, what: str, why: str, message: str) -> Exception:
    if why == "credentials":
        return CmemsCredentialsError(
            f"{product}: Copernicus Marine refused the credentials ({what}: {message}); set "
            f"{' and '.join(CREDENTIAL_VARIABLES)} to a valid Copernicus Marine account"
        )
    if why == "missing":
        return FileNotFoundError(
            f"{product}: {what}: not found upstream ({message}); plan the day again, the file may have been "
            "replaced by a newer production"
        )
    return CmemsDatasetError(
        f"{product}: {what}: {message}; check the dataset id and date window in oceantaco/catalog.toml "
        "and OCEANTACO_PINNED_VERSIONS"
    )


class _ConnectionBudget:
    """At most ``size`` concurrent transfers in this process; a call takes a slot per connection it opens."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = size
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def take(self, slots: int) -> Iterator[int]:
        slots = max(1, min(slots, self.size))
        with self._changed:
            self._changed.wait_for(lambda: self._free >= slots)
            self._free -= slots
        try:
            yield slots
        finally:
            with self._changed:
                self._free += slots
                self._changed.notify_all()


_BUDGETS: dict[int, _ConnectionBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def _budget(size: int) -> _ConnectionBudget:
    with _BUDGETS_LOCK:
        return _BUDGETS.setdefault(size, _ConnectionBudget(size))


def toolbox_call(
    settings: Settings, product: str, what: str, call: Callable[[int], T], *, slots: int = 1
) -> T:
    """``call(granted_slots)`` within the connection budget, retried with exponential backoff and full jitter.

    Permanent errors (refused credentials, unknown dataset or version, missing file) are raised at once as
    :class:`CmemsCredentialsError`, :class:`CmemsDatasetError` or ``FileNotFoundError`` naming the product
    and the fix; transient ones end as :class:`CmemsTransientError` after ``cmems_retries`` attempts.
    Messages never hold the credentials.
    """
    attempts = max(1, settings.cmems_retries)
    for attempt in range(1, attempts + 1):
        try:
            with _budget(settings.cmems_max_connections).take(slots) as granted:
                result = call(granted)
        except Exception as exc:  # classified below, outside the handler so no secret-bearing context chains
            failure: Exception = exc
        else:
            if result is None:  # the toolbox returns None when it aborted a credentials prompt
                failure = CmemsCredentialsError("the toolbox asked for credentials interactively")
            else:
                return result
        message = redact(f"{type(failure).__name__}: {failure}")
        why = _why_permanent(failure)
        if why is not None:
            raise _permanent_error(product, what, why, message)
        if attempt == attempts:
            raise CmemsTransientError(f"{product}: {what} failed after {attempts} attempt(s): {message}")
        delay = random.uniform(
            0.0, min(_BACKOFF_CAP_SECONDS, settings.cmems_backoff_seconds * 2 ** (attempt - 1))
        )
        logger.warning(
            "%s: %s failed (%s); attempt %d of %d in %.1f s",
            product,
            what,
            message,
            attempt + 1,
            attempts,
            delay,
        )
        note_retry()  # counted in the file's outcome when this call fetches a file
        _sleep(delay)
    raise AssertionError("unreachable")  # the loop returns or raises


@cache
def _datasets_by_id() -> dict[str, tuple[Product, Dataset]]:
    return {ds.dataset_id: (product, ds) for product in load_catalog().ordered() for ds in product.datasets}


def _native_key(s3_url: str) -> str:
    """``<PRODUCT_ID>/<DATASET_ID>_<version>/...`` of ``s3://<bucket>/native/<PRODUCT_ID>/...``."""
    return "/".join(s3_url.split("/")[4:])


def _day_of(dataset: Dataset, name: str) -> dt.date:
    found = re.match(dataset.pattern.replace("{date}", r"(?P<date>\d{8})") + r"\Z", name)
    if found is None:
        raise ValueError(f"{name}: not a file name of {dataset.dataset_id} (pattern {dataset.pattern})")
    return dt.datetime.strptime(found["date"], "%Y%m%d").date()


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _released(part: Any, now: dt.datetime) -> bool:
    if not part.released_date:
        return True
    try:
        released = dt.datetime.fromisoformat(str(part.released_date).replace("Z", "+00:00"))
    except ValueError:
        return True
    return (released if released.tzinfo else released.replace(tzinfo=dt.UTC)) <= now


class _AnySize(int):
    """A size equal to every size: what the source reports for files cut by ``subset``.

    The generic ``copy_from`` skips a file the raw root holds with the source's size. A subset file has no
    size upstream (it is cut on request), so any object under its name counts as fetched (writes are
    atomic, so present means complete) and the bytes read are not checked against a listed length.
    """

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = int.__hash__


class ToolboxSource:
    """Copernicus Marine as a read-only source for :func:`oceantaco.providers.fetch` (keys are native keys).

    It offers what ``Storage.copy_from`` uses of a source: ``size``, ``open_read`` and ``url_of``.
    ``open_read`` downloads the file into a private scratch directory (``TMPDIR``) and returns an open
    handle whose file is already unlinked, so nothing is left behind however the copy ends.
    """

    url = "copernicusmarine://"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __repr__(self) -> str:
        return "ToolboxSource()"

    def url_of(self, key: str) -> str:
        return f"{self.url}{key}"

    def _locate(self, key: str) -> tuple[Product, Dataset, str, str]:
        parts = key.split("/")
        dataset_id, _, version = parts[1].rpartition("_") if len(parts) >= 3 else ("", "", "")
        if dataset_id not in _datasets_by_id() or not _VERSION_LABEL.fullmatch(version):
            raise ValueError(
                f"{key}: not <PRODUCT_ID>/<DATASET_ID>_<version>/.../<file> of a catalog dataset"
            )
        product, dataset = _datasets_by_id()[dataset_id]
        return product, dataset, version, parts[-1]

    def _subsets(self, product: Product) -> bool:
        return self.settings.cmems_subset_depths and depth_levels(product) is not None

    def size(self, key: str) -> int | None:
        product, dataset, version, _ = self._locate(key)
        if self._subsets(product):
            return _AnySize(0)
        require_credentials(product.token)
        with tempfile.TemporaryDirectory(prefix="oceantaco-cmems-") as scratch:
            response = self._get(product, dataset, version, key, Path(scratch), dry_run=True)
        sizes = [f.file_size for f in response.files if _native_key(f.s3_url) == key]
        # The toolbox reports sizes in MiB (bytes / 2**20, exact in binary floating point).
        return round(sizes[0] * 2**20) if sizes else None

    def open_read(self, key: str) -> BinaryIO:
        product, dataset, version, name = self._locate(key)
        require_credentials(product.token)
        scratch = Path(tempfile.mkdtemp(prefix="oceantaco-cmems-"))
        try:
            if self._subsets(product):
                path = self._subset(product, dataset, version, name, scratch)
            else:
                path = scratch / "files" / name
                self._get(product, dataset, version, key, scratch)
                if not path.is_file():
                    raise FileNotFoundError(
                        f"{product.token}: {key} is not offered by Copernicus Marine any more; "
                        "plan the day again"
                    )
            handle = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
        finally:
            # On POSIX an open file outlives its name, so the scratch copy is gone once the handle closes.
            shutil.rmtree(scratch, ignore_errors=True)
        return handle

    def _get(
        self,
        product: Product,
        dataset: Dataset,
        version: str,
        key: str,
        scratch: Path,
        *,
        dry_run: bool = False,
    ):
        import copernicusmarine

        file_list = scratch / "file_list.txt"
        file_list.write_text(key + "\n")
        out = scratch / "files"

        def download(_: int) -> Any:
            response = copernicusmarine.get(
                dataset_id=dataset.dataset_id,
                dataset_version=version,
                file_list=file_list,
                output_directory=out,
                no_directories=True,
                overwrite=True,
                dry_run=dry_run,
                max_concurrent_requests=1,
                disable_progress_bar=True,
            )
            if response is None or dry_run:
                return response
            for info in response.files:
                etag = _MD5_ETAG.match(info.etag or "")
                path = out / info.filename
                if etag and path.is_file() and _md5(path) != etag.group(1):
                    raise OSError(f"{key}: MD5 of the download differs from the ETag; transfer corrupted")
            return response

        return toolbox_call(self.settings, product.token, f"get {key}", download)

    def _subset(self, product: Product, dataset: Dataset, version: str, name: str, scratch: Path) -> Path:
        """The day cut to the catalog's depth levels and variables, one file under the native name."""
        import copernicusmarine
        import dask

        day = _day_of(dataset, name)
        levels = depth_levels(product) or {}
        # A window, not an exact depth: the stored levels are float32 (0.494025 is 0.49402499...).
        window = max(product.depth_tolerance_m or 0.0, 1e-3)
        parts = []
        for index, (depth, variables) in enumerate(levels.items()):
            part = scratch / f"level{index}.nc"

            def cut(slots: int, part: Path = part, depth: float = depth, variables: tuple = variables) -> Any:
                # The zarr chunks are read by dask's threads: as many as the budget granted.
                with dask.config.set(scheduler="threads", num_workers=slots):
                    return copernicusmarine.subset(
                        dataset_id=dataset.dataset_id,
                        dataset_version=version,
                        variables=list(variables),
                        minimum_depth=max(0.0, depth - window),
                        maximum_depth=depth + window,
                        start_datetime=f"{day:%Y-%m-%d}T00:00:00",
                        end_datetime=f"{day:%Y-%m-%d}T23:59:59",
                        output_directory=scratch,
                        output_filename=part.name,
                        overwrite=True,
                        disable_progress_bar=True,
                    )

            what = f"subset {dataset.dataset_id}_{version} {day} {', '.join(variables)} at {depth:g} m"
            toolbox_call(
                self.settings,
                product.token,
                what,
                cut,
                slots=max(1, self.settings.cmems_max_connections // 2),
            )
            parts.append(part)
        merged = scratch / name
        _merge_levels(parts, merged, product.token, day)
        return merged


def _merge_levels(parts: list[Path], dest: Path, product: str, day: dt.date) -> None:
    """One NetCDF file from the per-level cuts: float32, zlib level 1, NaN where a variable has no level.

    Levels a variable was not cut at are NaN planes, which compress to almost nothing; the loader picks each
    variable's nearest level by the catalog's ``depth_m``.
    """
    import numpy as np
    import xarray as xr

    # One plane per dask chunk: a global 1/12° plane is 35 MB of float32, a whole variable is not bounded.
    opened = [xr.open_dataset(part, engine="h5netcdf", chunks={"time": 1, "depth": 1}) for part in parts]
    try:
        merged = xr.merge(opened, join="outer", combine_attrs="override")
        if merged.sizes.get("time", 1) != 1:
            raise FileNotFoundError(
                f"{product}: the subset of {day} holds {merged.sizes['time']} time steps, not 1"
            )
        for var in merged.variables.values():
            var.encoding = {}
        encoding = {
            name: {
                "dtype": "float32",
                "zlib": True,
                "complevel": 1,
                "shuffle": True,
                "_FillValue": np.float32(np.nan),
            }
            for name in merged.data_vars
        }
        encoding.update(
            {name: {"_FillValue": None} for name in merged.coords}
        )  # CF: coordinates have no fill
        merged.to_netcdf(dest, engine="h5netcdf", encoding=encoding)
    finally:
        for ds in opened:
            ds.close()


@register
class CopernicusMarine:
    """CMEMS through a native-layout mirror, or through the copernicusmarine toolbox when none is set."""

    name = "cmems"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def source(self) -> Storage | ToolboxSource:
        if self.settings.cmems_mirror:
            return Storage(self.settings.cmems_mirror)
        return ToolboxSource(self.settings)

    def plan(self, product: Product, days: list[dt.date]) -> list[DayPlan]:
        if self.settings.cmems_mirror:
            return self._plan_mirror(product, days, Storage(self.settings.cmems_mirror))
        return self._plan_toolbox(product, days)

    def _plan_mirror(self, product: Product, days: list[dt.date], source: Storage) -> list[DayPlan]:
        """Each listing and size request is retried on its own: a mirror answering one request 503 (or
        resetting it) must neither fail the whole plan nor make a file look missing."""
        versions = {
            ds.dataset_id: choose_version(
                with_retries(lambda ds=ds: dataset_versions(source, "", ds))[0], ds, self.settings
            )
            for ds in product.datasets
        }
        plans = []
        for day in days:
            files = []
            for dataset in product.datasets_for(day):
                version = versions[dataset.dataset_id]
                if version is None:
                    continue
                keys = with_retries(
                    lambda dataset=dataset, day=day, version=version: day_files(
                        source, "", dataset, day, version
                    )
                )[0]
                for key in keys:
                    size = with_retries(lambda key=key: _listed_size(source, key))[0]
                    files.append(RemoteFile(key, f"{product.raw_dir}/{key}", size))
            plans.append(DayPlan(product.token, day, tuple(files)))
        return plans

    def _plan_toolbox(self, product: Product, days: list[dt.date]) -> list[DayPlan]:
        """Per dataset: its version once, then one listing per month of the span (not one per day)."""
        require_credentials(product.token)
        subset = self.settings.cmems_subset_depths and depth_levels(product) is not None
        datasets: dict[str, Dataset] = {}
        months: dict[tuple[str, int, int], list[dt.date]] = {}
        for day in days:
            for dataset in product.datasets_for(day):
                datasets[dataset.dataset_id] = dataset
                months.setdefault((dataset.dataset_id, day.year, day.month), []).append(day)
        versions = {ds_id: self.version(product, dataset) for ds_id, dataset in datasets.items()}
        files: dict[dt.date, list[RemoteFile]] = {day: [] for day in days}
        for (ds_id, year, month), month_days in months.items():
            dataset = datasets[ds_id]
            listed = self.month_files(product, dataset, versions[ds_id], year, month)
            for day in month_days:
                regex = dataset.file_regex(day)
                found = sorted((k, size) for k, size in listed if regex.match(k.rsplit("/", 1)[-1]))
                if subset:
                    # A cut holds the same values under any production's name: take the newest, as the
                    # format step would, and leave the size open (see _AnySize).
                    files[day].extend(RemoteFile(k, f"{product.raw_dir}/{k}") for k, _ in found[-1:])
                else:
                    files[day].extend(RemoteFile(k, f"{product.raw_dir}/{k}", size) for k, size in found)
        return [DayPlan(product.token, day, tuple(files[day])) for day in days]

    def version(self, product: Product, dataset: Dataset) -> str:
        """The dataset version to fetch: the pinned one, else the newest released one ``describe`` lists."""
        import copernicusmarine

        catalogue = toolbox_call(
            self.settings,
            product.token,
            f"describe {dataset.dataset_id}",
            lambda _: copernicusmarine.describe(
                dataset_id=dataset.dataset_id, show_all_versions=True, disable_progress_bar=True
            ),
        )
        now = dt.datetime.now(dt.UTC)
        labels = sorted(
            {
                version.label
                for found in catalogue.products
                for ds in found.datasets
                if ds.dataset_id == dataset.dataset_id
                for version in ds.versions
                if _VERSION_LABEL.fullmatch(version.label) and any(_released(p, now) for p in version.parts)
            }
        )
        chosen = choose_version(labels, dataset, self.settings)
        if chosen is not None:
            return chosen
        pinned = self.settings.pinned_versions.get(dataset.dataset_id)
        if pinned is not None:
            raise CmemsDatasetError(
                f"{product.token}: version {pinned} of {dataset.dataset_id}, pinned in "
                "OCEANTACO_PINNED_VERSIONS, is not offered by Copernicus Marine "
                f"(released: {', '.join(labels) or 'none'}); change or remove the pin"
            )
        raise CmemsDatasetError(
            f"{product.token}: Copernicus Marine lists no released version of {dataset.dataset_id}; check "
            "the dataset id in oceantaco/catalog.toml"
        )

    def month_files(
        self, product: Product, dataset: Dataset, version: str, year: int, month: int
    ) -> list[tuple[str, int]]:
        """(native key, bytes) of the dataset's files named with a date of that month."""
        import copernicusmarine

        # The toolbox matches the regex against the whole object URL; the date pins it to one month.
        regex = "/" + dataset.pattern.replace("{date}", f"{year:04d}{month:02d}" + r"\d{2}") + "$"
        with tempfile.TemporaryDirectory(prefix="oceantaco-cmems-") as scratch:
            response = toolbox_call(
                self.settings,
                product.token,
                f"list {dataset.dataset_id}_{version} {year:04d}-{month:02d}",
                lambda _: copernicusmarine.get(
                    dataset_id=dataset.dataset_id,
                    dataset_version=version,
                    regex=regex,
                    dry_run=True,
                    output_directory=scratch,
                    disable_progress_bar=True,
                ),
            )
        # Sizes come in MiB (bytes / 2**20, exact in binary floating point).
        return [(_native_key(f.s3_url), round(f.file_size * 2**20)) for f in response.files]

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
