"""Binning engine: grids, tile edges, per-cell statistics and track bookkeeping against hand-computed values.

Most tests use a 2000 km grid, which is 5 × 4 cells of 18° × 22.5° per tile (round(90·110.574/2000) = 5,
round(90·111.32·cos 45°/2000) = 4), so every expected value can be worked out on paper. Positions are
quantised to 1/65534 of a cell, hence the position tolerance.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from oceantaco import binning
from oceantaco.binning import (
    TileAccumulator,
    TileBinner,
    bin_observations,
    cell_index,
    tile_grid,
)
from oceantaco.regions import REGION_NAMES, REGIONS, normalize_lon, region_index

KM = 2000.0  # 18° × 22.5° cells
POS_ATOL = 22.5 / 65534  # quantisation of positions within a cell
NA = "NORTH_ATLANTIC"


def chunk(track, points, names=("a", "b")):
    """(track, lat, lon, values) from rows of (lat, lon, a[, b])."""
    arr = np.array(points, dtype=np.float64)
    values = {}
    for column, name in enumerate(names, start=2):
        values[name] = arr[:, column] if arr.shape[1] > column else np.full(len(arr), np.nan)
    return track, arr[:, 0], arr[:, 1], values


# --- grids ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("km", "n_lat", "n_lon"),
    [
        (2.0, 4976, 3542),  # 90·110.574/2 = 4975.8; 90·78.7151/2 = 3542.2
        (7.0, 1422, 1012),  # 1421.7; 1012.1
        (2000.0, 5, 4),
    ],
)
def test_grid_sizes_steps_and_centres(km, n_lat, n_lon):
    for reg in REGIONS:
        grid = tile_grid(reg, km)
        assert (grid.n_lat, grid.n_lon) == (n_lat, n_lon)
        assert grid.lat_step == 90 / n_lat and grid.lon_step == 90 / n_lon
        assert grid.reference_lat == 45.0
        lat, lon = grid.lat, grid.lon
        assert lat.size == n_lat and lon.size == n_lon
        assert np.all(np.diff(lat) > 0) and np.all(np.diff(lon) > 0)
        # first/last centres half a cell inside the tile edges: edges align, nothing straddles a seam
        assert lat[0] == pytest.approx(reg.lat_min + 45 / n_lat, abs=1e-9)
        assert lat[-1] == pytest.approx(reg.lat_max - 45 / n_lat, abs=1e-9)
        assert lon[0] == pytest.approx(reg.lon_min + 45 / n_lon, abs=1e-9)
        assert lon[-1] == pytest.approx(reg.lon_max - 45 / n_lon, abs=1e-9)
    attrs = tile_grid(NA, km).attrs
    assert attrs["grid_reference_latitude_deg"] == 45.0
    assert attrs["grid_km_per_deg_lat"] == 110.574
    assert attrs["grid_km_per_deg_lon_at_equator"] == 111.32


def test_grid_rejects_bad_resolution():
    with pytest.raises(ValueError):
        tile_grid(NA, 0.0)
    with pytest.raises(ValueError):
        tile_grid("ATLANTIS", 2.0)


def test_cell_index_edges():
    north, south = tile_grid(NA, KM), tile_grid("SOUTH_ATLANTIC", KM)
    lat = np.array([0.0, 90.0, -90.0, -1e-9, 17.999, 18.0, 45.0, 45.0, 45.0])
    lon = np.array([-90.0, -90.0, -90.0, -45.0, -0.001, -67.5, 359.9, -90.000001, 0.0])
    # hand: row = floor(lat/18) (clipped at 90), col = floor((lon+90)/22.5)
    expected_north = [0, 4 * 4 + 0, -1, -1, 0 * 4 + 3, 1 * 4 + 1, 2 * 4 + 3, -1, -1]
    expected_south = [-1, -1, 0, 4 * 4 + 2, -1, -1, -1, -1, -1]
    assert cell_index(north, lat, lon).tolist() == expected_north
    assert cell_index(south, lat, lon).tolist() == expected_south


def test_points_on_tile_edges_are_in_exactly_one_tile():
    edges_lat = [-90.0, -45.0, 0.0, 45.0, 90.0]
    edges_lon = [-180.0, -90.0, 0.0, 90.0, 180.0, 270.0, 360.0, -270.0]
    lat, lon = (a.ravel() for a in np.meshgrid(edges_lat, edges_lon))
    for km in (KM, 2.0):
        hits = np.stack([cell_index(tile_grid(reg, km), lat, lon) >= 0 for reg in REGIONS])
        assert hits.sum(axis=0).tolist() == [1] * lat.size
        # ... and it is the tile the shared region rules name
        assert np.array_equal(np.argmax(hits, axis=0), region_index(lon, lat))

    stats = bin_observations([(0, lat, lon, {"a": np.ones(lat.size)})], KM, ["a"])
    assert sum(int(s.cell_values["n_obs"].sum()) for s in stats.values()) == lat.size
    # lat = 90 goes to the last row of the northern tile, lat = -90 to the first row of the southern one
    assert stats[NA]["n_obs"][4, 0] == 2  # (90, -90), (90, 270 -> -90)
    assert stats["SOUTH_ATLANTIC"]["n_obs"][0, 0] == 2  # (-90, -90), (-90, 270)
    assert stats["NORTH_PACIFIC_WEST"]["n_obs"][4, 0] == 2  # (90, -180), (90, 180 -> -180)
    assert stats["NORTH_INDIAN"]["n_obs"][0, 0] == 2  # (0, 0), (0, 360)
    assert stats["NORTH_INDIAN"]["n_obs"][2, 0] == 2  # (45, 0), (45, 360): lat 45 is row 2 (36..54)


def test_router_matches_region_index():
    rng = np.random.default_rng(1)
    lat = np.concatenate([rng.uniform(-95, 95, 20000), [90, -90, 0, -0.0, 1e-300, -1e-300, np.nan, 91, 45]])
    lon = np.concatenate(
        [rng.uniform(-720, 720, 20000), [180, -180, 0, -0.0, -1e-300, 1e-300, 10, 10, np.inf]]
    )
    lon_edges = np.array([-180, -90, 0, 90, 180, 270, 360, np.nextafter(180, 0), np.nextafter(-90, -180)])
    lat = np.concatenate([lat, np.repeat([0.0, 90.0, -90.0], lon_edges.size)])
    lon = np.concatenate([lon, np.tile(lon_edges, 3)])
    with np.errstate(invalid="ignore"):  # inf longitude
        assert np.array_equal(binning._route(lat, normalize_lon(lon)), region_index(lon, lat))


def test_neighbouring_tiles_combine_without_overlap():
    # one observation per tile, at a known cell
    chunks = []
    for i, reg in enumerate(REGIONS):
        lat = reg.lat_min + 18 * 2 + 9.0  # row 2 centre
        lon = reg.lon_min + 22.5 * 1 + 5.0  # col 1
        chunks.append((i, np.array([lat]), np.array([lon]), {"a": np.array([float(i)])}))
    stats = bin_observations(chunks, KM, ["a"])
    assert sorted(stats) == sorted(REGION_NAMES)
    combined = xr.combine_by_coords([s.to_dataset() for s in stats.values()])
    assert combined["lat"].values.tolist() == [-81.0, -63.0, -45.0, -27.0, -9.0, 9.0, 27.0, 45.0, 63.0, 81.0]
    assert np.allclose(combined["lon"].values, -180 + 11.25 + 22.5 * np.arange(16))
    assert combined.sizes == {"lat": 10, "lon": 16}
    for i, reg in enumerate(REGIONS):
        value = combined["a"].sel(lat=reg.lat_min + 45.0, lon=reg.lon_min + 33.75).item()
        assert value == i
    assert int(combined["n_obs"].sum()) == 8

    # the 7 km grids join into one regular global grid, spacing unchanged across the seams
    parts = []
    for reg in REGIONS:
        g = tile_grid(reg, 7.0)
        parts.append(
            xr.Dataset({"v": (("lat", "lon"), np.zeros(g.shape, np.int8))}, {"lat": g.lat, "lon": g.lon})
        )
    glob = xr.combine_by_coords(parts)
    assert glob.sizes == {"lat": 2 * 1422, "lon": 4 * 1012}
    for axis, step in (("lat", 90 / 1422), ("lon", 90 / 1012)):
        diffs = np.diff(glob[axis].values)
        assert np.allclose(diffs, step, rtol=0, atol=1e-9)
    assert glob["lat"].values[0] == pytest.approx(-90 + 45 / 1422) and glob["lon"].values[-1] < 180


# --- statistics of one cell ---------------------------------------------------------------------------------


def test_cell_mean_count_sem_position_and_nan_handling():
    chunks = [
        chunk(7, [
            (20.0, -40.0, 1.0, 10.0),  # cell (1, 2): lat 18..36, lon -45..-22.5
            (30.0, -30.0, 2.0, np.nan),
            (35.0, -25.0, 4.0, 14.0),
            (25.0, -35.0, np.nan, 6.0),  # primary missing: counts for b only
            (50.0, -80.0, 3.0, 5.0),  # cell (2, 0): single observation
            (80.0, -10.0, np.nan, 9.0),  # cell (4, 3): only b
            (10.0, -10.0, np.nan, np.nan),  # no value at all: ignored
        ]),
    ]  # fmt: skip
    stats = bin_observations(chunks, KM, ["a", "b"])
    assert list(stats) == [NA]
    s = stats[NA]
    a, a_sem, b, b_sem, n = s["a"], s["a_sem"], s["b"], s["b_sem"], s["n_obs"]

    # a over {1, 2, 4}: mean 7/3; deviations -4/3, -1/3, 5/3 -> M2 = 42/9, var = 7/3, SEM = sqrt(7/9)
    assert a[1, 2] == pytest.approx(7 / 3, rel=1e-6)
    assert a_sem[1, 2] == pytest.approx(math.sqrt(7) / 3, rel=1e-6)
    # b over {10, 14, 6}: mean 10; deviations 0, 4, -4 -> var 16, SEM = 4/sqrt(3)
    assert b[1, 2] == pytest.approx(10.0) and b_sem[1, 2] == pytest.approx(4 / math.sqrt(3), rel=1e-6)
    assert n[1, 2] == 3  # the primary-NaN observation is not counted
    # position averaged over the three primary-valid observations only
    assert s["obs_mean_lat"][1, 2] == pytest.approx((20 + 30 + 35) / 3, abs=POS_ATOL)
    assert s["obs_mean_lon"][1, 2] == pytest.approx((-40 - 30 - 25) / 3, abs=POS_ATOL)

    assert (a[2, 0], b[2, 0], n[2, 0]) == (3.0, 5.0, 1)
    assert np.isnan(a_sem[2, 0]) and np.isnan(b_sem[2, 0])  # n < 2
    assert s["obs_mean_lat"][2, 0] == pytest.approx(50.0, abs=POS_ATOL)

    # only b: a value for b, but the cell has no counted observation
    assert np.isnan(a[4, 3]) and b[4, 3] == 9.0 and n[4, 3] == 0
    assert s["primary_track"][4, 3] == -1 and s["is_overlap"][4, 3] == -1
    assert np.isnan(s["obs_mean_lat"][4, 3])

    # empty cells and dtypes
    assert (
        np.isnan(a[0, 0]) and n[0, 0] == 0 and s["primary_track"][0, 0] == -1 and s["is_overlap"][0, 0] == -1
    )
    assert int((n > 0).sum()) == 2
    dtypes = {name: s[name].dtype for name in s.names}
    assert dtypes == {
        "a": np.float32, "b": np.float32, "a_sem": np.float32, "b_sem": np.float32, "n_obs": np.int32,
        "obs_mean_lon": np.float32, "obs_mean_lat": np.float32, "primary_track": np.int16,
        "is_overlap": np.int8,
    }  # fmt: skip
    assert s["a"].shape == (5, 4)
    assert s.tracks.tolist() == [7] and s.n_tracks == 1


def test_sem_of_large_values_with_tiny_spread():
    values = np.array([1000.001, 999.999, 1000.002, 1000.000])
    # mean 1000.0005; deviations ±0.0005, ±0.0015 -> M2 = 5e-6, var = 5e-6/3, SEM = sqrt(5e-6/3)/2
    expected_sem = math.sqrt(5e-6 / 3) / 2
    lat, lon = np.full(4, 40.0), np.full(4, -50.0)
    one = bin_observations([(0, lat, lon, {"a": values})], KM, ["a"])[NA]
    assert one["a_sem"][2, 1] == pytest.approx(expected_sem, rel=1e-5)
    assert one["a"][2, 1] == np.float32(1000.0005)
    # the same values one per chunk, from two tracks, folded into the per-cell store after every chunk
    chunks = [(i % 2, lat[i : i + 1], lon[i : i + 1], {"a": values[i : i + 1]}) for i in range(4)]
    folded = bin_observations(chunks, KM, ["a"], buffer_limit=0)[NA]
    assert folded["a_sem"][2, 1] == pytest.approx(expected_sem, rel=1e-5)
    assert folded["a"][2, 1] == np.float32(1000.0005)


def test_longitudes_are_averaged_next_to_the_antimeridian():
    chunks = [
        chunk(0, [(10.0, 180.0, 1.0), (10.0, -179.9, 1.0), (10.0, 180.2, 1.0)]),  # -> -180, -179.9, -179.8
        chunk(1, [(10.0, 179.95, 1.0), (10.0, 179.85, 1.0)]),
        chunk(2, [(10.0, 359.95, 1.0), (10.0, -0.15, 1.0)]),  # -> -0.05, -0.15
    ]
    stats = bin_observations(chunks, KM, ["a"])
    assert stats["NORTH_PACIFIC_WEST"]["obs_mean_lon"][0, 0] == pytest.approx(-179.9, abs=POS_ATOL)
    assert stats["NORTH_PACIFIC_EAST"]["obs_mean_lon"][0, 3] == pytest.approx(179.9, abs=POS_ATOL)
    assert stats[NA]["obs_mean_lon"][0, 3] == pytest.approx(-0.1, abs=POS_ATOL)


# --- tracks -------------------------------------------------------------------------------------------------


def test_disjoint_passes_never_overlap():
    # The original counted tracks cumulatively and flagged every pass but the last as overlapping.
    chunks = [
        chunk(100, [(5.0, -85.0, 1.0), (23.0, -85.0, 1.0)]),  # cells (0, 0), (1, 0)
        chunk(200, [(5.0, -5.0, 2.0), (41.0, -5.0, 2.0)]),  # cells (0, 3), (2, 3)
        chunk(300, [(77.0, -40.0, 3.0)]),  # cell (4, 2)
    ]
    s = bin_observations(chunks, KM, ["a"])[NA]
    overlap, primary = s["is_overlap"], s["primary_track"]
    touched = s["n_obs"] > 0
    assert int(touched.sum()) == 5
    assert np.all(overlap[touched] == 0) and np.all(overlap[~touched] == -1)
    assert s.tracks.tolist() == [100, 200, 300]
    assert [primary[0, 0], primary[1, 0], primary[0, 3], primary[2, 3], primary[4, 2]] == [0, 0, 1, 1, 2]


def test_track_missing_from_a_tile_does_not_shift_indices():
    # The original appended every file to track_ids but advanced primary_track only for contributing ones.
    chunks = [
        chunk(10, [(-40.0, -50.0, 1.0)]),  # SOUTH_ATLANTIC only
        chunk(20, [(40.0, -50.0, 2.0)]),  # NA cell (2, 1)
        chunk(25, [(40.0, 10.0, 9.0)]),  # NORTH_INDIAN only
        chunk(27, [(60.0, -50.0, np.nan)]),  # inside NA but without any value: does not contribute
        chunk(30, [(60.0, -50.0, 3.0)]),  # NA cell (3, 1)
    ]
    stats = bin_observations(chunks, KM, ["a"])
    s = stats[NA]
    assert s.tracks.tolist() == [20, 30] and s.n_tracks == 2
    assert s["primary_track"][2, 1] == 0 and s["primary_track"][3, 1] == 1
    assert s["a"][3, 1] == 3.0
    assert stats["SOUTH_ATLANTIC"].tracks.tolist() == [10]
    assert stats["SOUTH_ATLANTIC"]["primary_track"][2, 1] == 0  # row (−40+90)//18, col (−50+90)//22.5
    assert sorted(stats) == ["NORTH_ATLANTIC", "NORTH_INDIAN", "SOUTH_ATLANTIC"]  # tiles are created lazily


def test_primary_track_majority_ties_and_overlap():
    cell = [(40.0, -50.0)]  # NA cell (2, 1)
    other = [(40.0, -30.0)]  # NA cell (2, 2)
    chunks = [
        chunk(5, [(*cell[0], 1.0), (*cell[0], 1.0)]),  # arrives first, but 3 < 5 wins the tie
        chunk(9, [(*cell[0], 1.0)] + [(*other[0], 1.0)] * 3),
        chunk(3, [(*cell[0], 1.0)]),
        chunk(3, [(*cell[0], 1.0), (*other[0], 1.0)]),  # same track again, in a later chunk
        chunk(9, [(*cell[0], np.nan, 1.0)] * 4),  # primary missing: does not count for track 9
    ]
    s = bin_observations(chunks, KM, ["a", "b"])[NA]
    assert s.tracks.tolist() == [3, 5, 9]
    # cell (2, 1): track 3 -> 2, track 5 -> 2, track 9 -> 1: tie between 3 and 5 -> 3 (index 0)
    assert s["n_obs"][2, 1] == 5 and s["primary_track"][2, 1] == 0 and s["is_overlap"][2, 1] == 1
    # cell (2, 2): track 9 -> 3, track 3 -> 1
    assert s["n_obs"][2, 2] == 4 and s["primary_track"][2, 2] == 2 and s["is_overlap"][2, 2] == 1


def test_single_track_in_many_chunks_is_no_overlap():
    chunks = [chunk(4, [(40.0, -50.0, float(i))]) for i in range(5)]
    s = bin_observations(chunks, KM, ["a"])[NA]
    assert s["is_overlap"][2, 1] == 0 and s["primary_track"][2, 1] == 0 and s["n_obs"][2, 1] == 5
    assert s["a"][2, 1] == 2.0 and s["a_sem"][2, 1] == pytest.approx(math.sqrt(2.5 / 5), rel=1e-6)


# --- streaming ----------------------------------------------------------------------------------------------


def _random_observations(seed: int) -> pd.DataFrame:
    """Points strictly inside cells of NORTH_ATLANTIC and NORTH_INDIAN (never on an edge), 6 tracks."""
    rng = np.random.default_rng(seed)
    size = 3000
    row, col = rng.integers(0, 5, size), rng.integers(0, 8, size)  # 8 columns = both tiles
    lat = 18.0 * row + rng.uniform(0.01, 17.99, size)
    lon = -90.0 + 22.5 * col + rng.uniform(0.01, 22.49, size)
    a = rng.normal(0.3, 0.2, size)
    b = rng.normal(1000.0, 0.01, size)
    a[rng.random(size) < 0.1] = np.nan
    b[rng.random(size) < 0.1] = np.nan
    return pd.DataFrame({
        "track": rng.integers(0, 6, size) * 11, "lat": lat, "lon": lon, "a": a, "b": b,
        "tile": np.where(col < 4, NA, "NORTH_INDIAN"), "row": row, "col": col % 4,
    })  # fmt: skip


def _reference(df: pd.DataFrame) -> pd.DataFrame:
    """Straightforward per-cell statistics with pandas, independent of the engine."""
    groups = df.groupby(["tile", "row", "col"])
    ref = pd.DataFrame({
        "a": groups["a"].mean(), "a_sem": groups["a"].std(ddof=1) / np.sqrt(groups["a"].count()),
        "b": groups["b"].mean(), "b_sem": groups["b"].std(ddof=1) / np.sqrt(groups["b"].count()),
        "n_obs": groups["a"].count(),
    })  # fmt: skip
    valid = df[df["a"].notna()]
    by_cell = valid.groupby(["tile", "row", "col"])
    ref["lat"], ref["lon"] = by_cell["lat"].mean(), by_cell["lon"].mean()
    counts = valid.groupby(["tile", "row", "col", "track"]).size().rename("count").reset_index()
    counts = counts.sort_values(
        ["tile", "row", "col", "count", "track"], ascending=[True, True, True, False, True]
    )
    ref["primary_id"] = counts.groupby(["tile", "row", "col"])["track"].first()
    ref["n_tracks"] = counts.groupby(["tile", "row", "col"])["track"].nunique()
    return ref


def _compare(stats: dict, df: pd.DataFrame) -> None:
    ref = _reference(df)
    assert sorted(stats) == ["NORTH_ATLANTIC", "NORTH_INDIAN"]
    for tile, s in stats.items():
        in_tile = df[df["tile"] == tile]
        assert s.tracks.tolist() == sorted(in_tile["track"].unique())
        r = ref.loc[tile]
        rows, cols = r.index.get_level_values("row"), r.index.get_level_values("col")
        for name in ("a", "a_sem", "b", "b_sem"):
            np.testing.assert_allclose(s[name][rows, cols], r[name], rtol=2e-5, equal_nan=True)
        assert np.array_equal(s["n_obs"][rows, cols], r["n_obs"])
        has = (r["n_obs"] > 0).to_numpy()
        np.testing.assert_allclose(s["obs_mean_lat"][rows, cols][has], r["lat"][has], atol=POS_ATOL)
        np.testing.assert_allclose(s["obs_mean_lon"][rows, cols][has], r["lon"][has], atol=POS_ATOL)
        primary = s["primary_track"][rows, cols][has]
        assert np.array_equal(s.tracks[primary], r["primary_id"][has].astype(int))
        assert np.array_equal(s["is_overlap"][rows, cols][has], (r["n_tracks"][has] > 1).astype(np.int8))
        assert int((s["n_obs"] > 0).sum()) == int(has.sum())


def test_result_does_not_depend_on_chunking_or_order(monkeypatch):
    df = _random_observations(3)

    def chunks_of(frame, size):
        for start in range(0, len(frame), size):
            part = frame.iloc[start : start + size]
            for track, rows in part.groupby("track"):
                yield int(track), rows["lat"].to_numpy(), rows["lon"].to_numpy(), {
                    "a": rows["a"].to_numpy(), "b": rows["b"].to_numpy()
                }  # fmt: skip

    by_track = bin_observations(chunks_of(df.sort_values("track"), len(df)), KM, ["a", "b"])
    _compare(by_track, df)

    # shuffled, in chunks of 37, with tiny buffers and pieces: exercises folding, merging and slicing
    monkeypatch.setattr(binning, "PIECE_OBS", 16)
    shuffled = df.sample(frac=1.0, random_state=5)
    streamed = bin_observations(chunks_of(shuffled, 37), KM, ["a", "b"], buffer_limit=50)
    _compare(streamed, df)
    for tile in by_track:
        for name in ("n_obs", "primary_track", "is_overlap"):
            assert np.array_equal(by_track[tile][name], streamed[tile][name])


def test_accumulator_accepts_2d_swaths_and_ignores_points_outside():
    grid = tile_grid(NA, KM)
    acc = TileAccumulator(grid, ["a"])
    lat = np.array([[40.0, 40.0], [-40.0, np.nan]])
    lon = np.array([[-50.0, 310.0], [-50.0, -50.0]])  # 310 = -50
    assert acc.add(1, lat, lon, {"a": np.array([[1.0, 3.0], [5.0, 7.0]], np.float32)}) == 2
    s = acc.finish()
    assert s["a"][2, 1] == 2.0 and s["n_obs"][2, 1] == 2 and s["a_sem"][2, 1] == pytest.approx(1.0)
    with pytest.raises(RuntimeError):
        acc.finish()
    with pytest.raises(RuntimeError):
        acc.add(1, lat, lon, {"a": np.ones((2, 2))})


def test_empty_accumulator_and_validation():
    grid = tile_grid(NA, KM)
    s = TileAccumulator(grid, ["a", "b"]).finish()
    assert s.cells.size == 0 and s.n_tracks == 0 and np.isnan(s["a"]).all() and (s["n_obs"] == 0).all()
    with pytest.raises(ValueError):
        TileAccumulator(grid, ["a", "n_obs"])
    with pytest.raises(ValueError):
        TileAccumulator(grid, ["a", "a_sem"])
    binner = TileBinner(KM, ["a"])
    with pytest.raises(ValueError):
        binner.add(0, np.zeros(3), np.zeros(2), {"a": np.zeros(3)})
    with pytest.raises(ValueError):
        binner.add(0, np.zeros(3), np.zeros(3), {"a": np.zeros(2)})
    with pytest.raises(ValueError):
        binner.add(0, np.zeros(3), np.zeros(3), {"x": np.zeros(3)})
    assert binner.regions == []


def test_state_is_sparse_at_2_km():
    # A dense float64 accumulator of one 2 km tile would be 141 MB per statistic; the engine holds only
    # the observations and the touched cells.
    rng = np.random.default_rng(0)
    size = 50_000
    lat, lon = rng.uniform(0, 90, size), rng.uniform(-90, 0, size)
    values = {"a": rng.normal(size=size), "b": rng.normal(size=size), "c": rng.normal(size=size)}
    tracemalloc.start()
    try:
        binner = TileBinner(2.0, list(values))
        for k in range(4):
            binner.add(k, lat, lon, values)
        stats = binner.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40 * 2**20  # one dense float32 array of the tile alone would be 70 MB
    s = stats[NA]
    assert s.grid.size == 4976 * 3542
    hand_cells = np.floor(lat * 4976 / 90) * 3542 + np.floor((lon + 90) * 3542 / 90)
    assert s.cells.size == np.unique(hand_cells).size
    assert int(s.cell_values["n_obs"].sum()) == 4 * size
    assert (s.cell_values["is_overlap"] == 1).all()  # four tracks in every touched cell
    assert (s.cell_values["primary_track"] == 0).all()  # four-way tie -> smallest id


def test_finish_iter_releases_tiles_in_region_order():
    binner = TileBinner(KM, ["a"])
    binner.add(0, np.array([10.0, -10.0, 10.0]), np.array([10.0, 10.0, -100.0]), {"a": np.ones(3)})
    assert binner.regions == ["NORTH_INDIAN", "NORTH_PACIFIC_WEST", "SOUTH_INDIAN"]
    names = [name for name, _ in binner.finish_iter()]
    assert names == ["NORTH_INDIAN", "NORTH_PACIFIC_WEST", "SOUTH_INDIAN"]
    assert binner.regions == []
