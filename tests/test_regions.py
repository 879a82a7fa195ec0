import numpy as np
import pytest
import shapely

from oceantaco.regions import REGION_NAMES, REGIONS, normalize_lon, region, region_index

PUBLISHED_NAMES = {
    "SOUTH_PACIFIC_WEST",
    "SOUTH_ATLANTIC",
    "SOUTH_INDIAN",
    "SOUTH_PACIFIC_EAST",
    "NORTH_PACIFIC_WEST",
    "NORTH_ATLANTIC",
    "NORTH_INDIAN",
    "NORTH_PACIFIC_EAST",
}


def test_eight_published_tiles_of_90_degrees():
    assert set(REGION_NAMES) == PUBLISHED_NAMES
    assert list(REGION_NAMES) == sorted(REGION_NAMES)
    for reg in REGIONS:
        assert reg.lon_max - reg.lon_min == 90 and reg.lat_max - reg.lat_min == 90


@pytest.mark.parametrize(
    ("lon", "lat", "expected"),
    [
        (-180.0, -90.0, "SOUTH_PACIFIC_WEST"),
        (180.0, 10.0, "NORTH_PACIFIC_WEST"),  # 180 normalises to -180
        (-90.0, 0.0, "NORTH_ATLANTIC"),  # lower edges are inside
        (0.0, -0.001, "SOUTH_INDIAN"),
        (90.0, 45.0, "NORTH_PACIFIC_EAST"),
        (359.9, 89.0, "NORTH_ATLANTIC"),  # 0..360 convention
        (10.0, 90.0, "NORTH_INDIAN"),  # the pole row belongs to the northern tiles
        (-0.0001, -89.99, "SOUTH_ATLANTIC"),
    ],
)
def test_edges_are_half_open(lon, lat, expected):
    (index,) = region_index(np.array([lon]), np.array([lat]))
    assert REGION_NAMES[index] == expected


def test_every_point_of_the_globe_is_in_exactly_one_tile():
    lon, lat = np.meshgrid(np.arange(-180, 360.01, 0.5), np.arange(-90, 90.01, 0.5))
    memberships = sum(reg.contains(lon, lat).astype(int) for reg in REGIONS)
    assert memberships.min() == 1 and memberships.max() == 1
    assert (region_index(lon, lat) >= 0).all()


def test_non_finite_points_belong_to_no_tile():
    assert region_index(np.array([np.nan, 10.0]), np.array([0.0, np.nan])).tolist() == [-1, -1]


def test_normalize_lon():
    assert normalize_lon(np.array([180.0, -180.0, 360.0, 190.0, -190.0])).tolist() == [
        -180,
        -180,
        0,
        -170,
        170,
    ]


def test_polygon_is_the_tile_box():
    reg = region("SOUTH_INDIAN")
    assert shapely.from_wkb(reg.polygon_wkb).bounds == (0.0, -90.0, 90.0, 0.0)
    with pytest.raises(ValueError, match="unknown region"):
        region("ARCTIC")
