"""One Prefect task per documented PostDICOM function: ``from tasks import NAME``."""

from .dicomweb import qido_search, retrieve_images_using_wado_rs, upload_dicom_images_in_a_folder

__all__ = [
    "upload_dicom_images_in_a_folder",
    "qido_search",
    "retrieve_images_using_wado_rs",
]
