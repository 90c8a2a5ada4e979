"""One Prefect task per documented PostDICOM function: ``from tasks import NAME``."""

from .custom import (
    add_order_to_folder,
    assign_order_to_user,
    assign_order_to_user_group,
    create_folder,
    create_patient_order,
    create_share_link,
    delete_patient_order,
    get_dicom_tag_content,
    get_patient_order_list,
    get_patient_order_properties,
    search_folder,
    share_folder_with_url,
    share_patient_order_with_url,
)
from .dicomweb import qido_search, retrieve_images_using_wado_rs, upload_dicom_images_in_a_folder

__all__ = [
    "upload_dicom_images_in_a_folder",
    "qido_search",
    "retrieve_images_using_wado_rs",
    "create_share_link",
    "share_patient_order_with_url",
    "create_folder",
    "search_folder",
    "share_folder_with_url",
    "add_order_to_folder",
    "assign_order_to_user",
    "assign_order_to_user_group",
    "create_patient_order",
    "get_patient_order_properties",
    "get_patient_order_list",
    "delete_patient_order",
    "get_dicom_tag_content",
]
