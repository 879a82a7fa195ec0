"""Runtime settings: one typed object read from ``OCEANTACO_*`` environment variables.

Bucket credentials are deliberately *not* settings: s3fs/gcsfs/obstore read their own standard variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``STORAGE_EMULATOR_HOST``…),
which is also what Kubernetes workload identity injects. Scratch space for downloads and TACO builds is
Python's standard temporary directory, so ``TMPDIR`` points it at a volume (an emptyDir on Kubernetes).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OCEANTACO_", extra="ignore")

    cmems_mirror: str | None = Field(
        default=None,
        description="fsspec URL of a tree laid out like Copernicus Marine's native files "
        "(<PRODUCT_ID>/<DATASET_ID>_<version>/YYYY/MM/<file>); when set, CMEMS files are copied from it.",
    )
    argo_gdac: str = Field(
        default="https://data-argo.ifremer.fr",
        description="Argo GDAC root (https://, ftp:// or local path) with ar_index_global_prof.txt and dac/.",
    )
    pinned_versions: dict[str, str] = Field(
        default_factory=dict,
        description='Dataset version per dataset id, e.g. {"cmems_mod_glo_phy_my_0.083deg_P1D-m": "202311"}; '
        "unpinned datasets use the newest version the source lists.",
    )
