"""Sparse satellite observations binned per tile: L3 along-track SSH (1-D) and SWOT swaths (2-D).

Each file is read once; its valid observations of the day are routed to the tiles they fall in
(:mod:`oceantaco.binning`) in one pass, per track or pass. Tiles are then finished and written one at a
time, one variable at a time, so a day of 2 km SWOT tiles never exists as dense arrays all at once.

An observation belongs to the UTC day of its own timestamp: a pass that crosses midnight is read for
both days and each of its observations is counted in exactly one of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from oceantaco.binning import TileBinner, TileStatistics
from oceantaco.catalog import Product
from oceantaco.encoding import StreamedVariable, stream_netcdf_bytes
from oceantaco.loaders import InputError, Tile, day_bounds_us, register
from oceantaco.loaders.cf import decode, decode_time
from oceantaco.loaders.netcdf import NetcdfFile, open_netcdf
from oceantaco.regions import region

BINNING_OUTPUTS = ("n_obs", "obs_mean_lon", "obs_mean_lat", "primary_track", "is_overlap")
TILE_CHUNKS = {"lat": 256, "lon": 256}


@dataclass
class Track:
    """One pass or along-track segment: its id, platform and mean observation time within the day."""

    track_id: str
    platform: str
    time_sum_us: float = 0.0
    n_obs: int = 0

    def add_times(self, times: np.ndarray) -> None:
        self.time_sum_us += float(times.astype(np.int64).sum(dtype=np.float64))
        self.n_obs += int(times.size)

    @property
    def mean_time(self) -> str:
        if not self.n_obs:
            return ""
        mean = np.datetime64(round(self.time_sum_us / self.n_obs), "us")
        return str(mean.astype("datetime64[s]")) + "Z"


@dataclass
class Observations:
    """Decoded valid observations of one track, already restricted to the day."""

    track: Track
    times: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    values: dict[str, np.ndarray]


@dataclass
class _Day:
    tracks: list[Track] = field(default_factory=list)
    by_id: dict[str, int] = field(default_factory=dict)
    rules: set[str] = field(default_factory=set)

    def index(self, track: Track) -> int:
        if track.track_id not in self.by_id:
            self.by_id[track.track_id] = len(self.tracks)
            self.tracks.append(track)
        return self.by_id[track.track_id]


def binned_variables(product: Product) -> list[str]:
    """Variables whose cell mean is binned, the required (primary) one first."""
    names = [n for n in product.variables if n not in BINNING_OUTPUTS and not n.endswith("_sem")]
    return sorted(names, key=lambda n: not product.variables[n].required)


def _in_day(times: np.ndarray, day: dt.date) -> np.ndarray:
    start = np.datetime64(day, "us")
    return (times >= start) & (times < start + np.timedelta64(1, "D"))


def _decoded(ds: NetcdfFile, name: str) -> np.ndarray:
    return decode(ds[name].read(), ds[name].attrs)


def _times(ds: NetcdfFile, path: Path) -> np.ndarray:
    if "time" not in ds:
        raise InputError(f"{path.name}: no time variable")
    return decode_time(_decoded(ds, "time"), ds["time"].attrs.get("units"), name=f"{path.name}: time")


def _dense(stats: TileStatistics, name: str) -> np.ndarray:
    """A tile output with empty cells as missing; for ``n_obs`` too, so that written and unwritten (all
    empty) chunks read back the same."""
    values = stats.dense(name)
    if name == "n_obs":
        values[values == 0] = -1
    return values


class BinnedLoader:
    """Shared part: bin every file's observations, then finish and write tiles one by one."""

    tiling = ""

    def observations(self, product: Product, day: dt.date, path: Path, state: _Day) -> Iterator[Observations]:
        raise NotImplementedError

    def tiles(self, product: Product, day: dt.date, paths: list[Path]) -> Iterator[Tile]:
        variables = binned_variables(product)
        state = _Day()
        binner = TileBinner(product.resolution_km, variables)
        for path in paths:
            for obs in self.observations(product, day, path, state):
                obs.track.add_times(obs.times)
                binner.add(state.index(obs.track), obs.lat, obs.lon, obs.values)
        for name, stats in binner.finish_iter():
            yield self._tile(product, day, name, stats, state)

    def _tile(self, product: Product, day: dt.date, name: str, stats: TileStatistics, state: _Day) -> Tile:
        grid = stats.grid
        tracks = [state.tracks[int(i)] for i in stats.tracks]
        n_obs = int(stats.cell_values["n_obs"].sum())
        attrs = {
            **grid.attrs,
            "processing": "cell mean, standard error of the mean, mean position; no smoothing",
            "quality_rule": "; ".join(sorted(state.rules)) or "none: the product carries no quality flag",
            "day_rule": "each observation belongs to the UTC day of its own timestamp",
        }

        chunk_lat, chunk_lon = TILE_CHUNKS["lat"], TILE_CHUNKS["lon"]
        occupied = np.zeros((-(-grid.n_lat // chunk_lat), -(-grid.n_lon // chunk_lon)), dtype=bool)
        occupied[(stats.cells // grid.n_lon) // chunk_lat, (stats.cells % grid.n_lon) // chunk_lon] = True

        def serialize(extra_attrs: dict) -> bytes:
            variables = {
                out: StreamedVariable(("lat", "lon"), lambda out=out: _dense(stats, out))
                for out in product.variables
            }
            coord_attrs = {
                "lat": {"units": "degrees_north", "standard_name": "latitude"},
                "lon": {"units": "degrees_east", "standard_name": "longitude"},
            }
            data, _ = stream_netcdf_bytes(
                {"lat": grid.n_lat, "lon": grid.n_lon, "track": len(tracks)},
                {"lat": (grid.lat, coord_attrs["lat"]), "lon": (grid.lon, coord_attrs["lon"])},
                variables,
                product.variables,
                attrs={**attrs, **extra_attrs},
                chunks=TILE_CHUNKS,
                occupied=occupied,
                extra={
                    "track_ids": (("track",), np.array([t.track_id for t in tracks], dtype=object), {}),
                    "track_times": (
                        ("track",),
                        np.array([t.mean_time for t in tracks], dtype=object),
                        {"long_name": "Mean observation time of the track within the day (UTC)"},
                    ),
                    "track_platforms": (("track",), np.array([t.platform for t in tracks], dtype=object), {}),
                },
            )
            return data

        return Tile(
            region=region(name),
            dataset=None,
            encoding={},
            bbox=[float(grid.lon[0]), float(grid.lat[0]), float(grid.lon[-1]), float(grid.lat[-1])],
            time_range_us=day_bounds_us(day),
            resolution_deg=(grid.lat_step, grid.lon_step),
            n_points=n_obs,
            n_tracks=len(tracks),
            serializer=serialize,
        )


@register
class AlongTrackLoader(BinnedLoader):
    """DUACS L3 1 Hz along-track files, one per satellite and day; a track is (satellite, cycle, track)."""

    tiling = "along_track"

    def observations(self, product: Product, day: dt.date, path: Path, state: _Day) -> Iterator[Observations]:
        variables = binned_variables(product)
        with open_netcdf(path) as ds:
            missing = [v for v in variables[:1] if v not in ds]
            if missing or "latitude" not in ds or "longitude" not in ds:
                raise InputError(f"{path.name}: not a DUACS L3 along-track file (no {', '.join(missing)})")
            times = _times(ds, path)
            lat, lon = _decoded(ds, "latitude"), _decoded(ds, "longitude")
            values = {v: _decoded(ds, v) if v in ds else np.full(times.shape, np.nan) for v in variables}
            keep = _in_day(times, day) & np.isfinite(lat) & np.isfinite(lon)
            if "flag" in ds:
                keep &= ds["flag"].read() == 0
                state.rules.add("along-track: observations with flag != 0 dropped")
            cycle = ds["cycle"].read().astype(np.int64) if "cycle" in ds else np.zeros(times.shape, np.int64)
            track = ds["track"].read().astype(np.int64) if "track" in ds else np.zeros(times.shape, np.int64)
            platform = str(ds.attrs.get("platform", ""))
        satellite = path.name.split("_")[2] if path.name.count("_") >= 3 else path.stem
        keys = cycle[keep] * 100_000 + track[keep]
        order = np.argsort(keys, kind="stable")
        bounds = np.flatnonzero(np.diff(keys[order])) + 1
        for segment in np.split(order, bounds) if order.size else []:
            first = int(keys[segment[0]])
            track_id = f"{satellite}_c{first // 100_000:03d}_t{first % 100_000:04d}"
            selected = np.flatnonzero(keep)[segment]
            yield Observations(
                Track(track_id, platform),
                times[selected],
                lat[selected],
                lon[selected],
                {v: values[v][selected] for v in variables},
            )


# Output variable <- upstream variable, per SWOT file kind. L2 has no noise-filtered SSHA and no MDT.
_SWOT_SOURCES = {
    "L3": {"ssha_filtered": "ssha_filtered", "ssha_unfiltered": "ssha_unfiltered", "mdt": "mdt"},
    "L2": {"ssha_unfiltered": "ssha_karin"},
}


def _quality_flag(ds: NetcdfFile, primary: str) -> str | None:
    """The flag variable of a pass: L2 names it in the SSHA's ``quality_flag`` attribute, L3 Expert has
    ``quality_flag`` itself (L3 Basic has none: its invalid pixels are already fill)."""
    named = ds[primary].attrs.get("quality_flag")
    if isinstance(named, str) and named in ds:
        return named
    return "quality_flag" if "quality_flag" in ds else None


@register
class SwathLoader(BinnedLoader):
    """SWOT KaRIn passes (L3 LR SSH Basic/Expert, L2 LR SSH Basic): 2-D num_lines × num_pixels swaths."""

    tiling = "swath"

    def observations(self, product: Product, day: dt.date, path: Path, state: _Day) -> Iterator[Observations]:
        variables = binned_variables(product)
        with open_netcdf(path) as ds:
            level = "L3" if "ssha_filtered" in ds else "L2" if "ssha_karin" in ds else None
            if level is None or "latitude" not in ds or "longitude" not in ds:
                raise InputError(
                    f"{path.name}: not a SWOT L3/L2 LR SSH file (no ssha_filtered or ssha_karin)"
                )
            times = _times(ds, path)
            lines = _in_day(times, day)
            if not lines.any():
                return
            rows = np.flatnonzero(lines)
            window = slice(int(rows[0]), int(rows[-1]) + 1)  # the day's lines are contiguous in a pass
            lat = decode(ds["latitude"].read()[window], ds["latitude"].attrs)
            lon = decode(ds["longitude"].read()[window], ds["longitude"].attrs)
            sources = _SWOT_SOURCES[level]
            values = {}
            for out in variables:
                source = sources.get(out)
                values[out] = (
                    decode(ds[source].read()[window], ds[source].attrs)
                    if source in ds
                    else np.full(lat.shape, np.nan)
                )
            good = np.isfinite(lat) & np.isfinite(lon) & lines[window][:, None]
            flag = _quality_flag(ds, "ssha_filtered" if level == "L3" else "ssha_karin")
            if flag is not None:
                good &= ds[flag].read()[window] == 0
                state.rules.add(f"SWOT {level}: pixels with {flag} != 0 dropped")
            cycle = ds.attrs.get("cycle_number")
            pass_number = ds.attrs.get("pass_number")
        if cycle is None or pass_number is None:
            parts = path.name.split("_")
            cycle, pass_number = parts[-5], parts[-4]
        pixel_times = np.broadcast_to(times[window][:, None], lat.shape)[good]
        yield Observations(
            Track(f"c{int(cycle):03d}_p{int(pass_number):03d}", "SWOT"),
            pixel_times,
            lat[good],
            lon[good],
            {out: v[good] for out, v in values.items()},
        )
