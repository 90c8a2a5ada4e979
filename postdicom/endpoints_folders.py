"""The folder and share endpoints of PostDICOM as client methods, written out.

CreateShareLink, SharePatientOrderWithUrl, CreateFolder, SearchFolder,
ShareFolderWithUrl and AddOrderToFolder: what groups orders and hands them to
people outside the account. What every custom-endpoint method does and raises
is said in :mod:`postdicom.endpoints`, which joins these to the order methods.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import SecretStr

from . import endpoint_table as table
from .endpoint_engine import EndpointEngine
from .models import AddOrderToFolderAnswer, FolderAnswer, SearchFolderAnswer, ShareAnswer
from .wire import DateLike, UuidLike


class FolderAndShareEndpoints(EndpointEngine):
    """The folder and share methods of :class:`postdicom.client.PostDicomClient`."""

    def create_share_link(
        self,
        patient_order_info_list: Sequence[UuidLike],
        expire_date: DateLike,
        share_password: str | SecretStr | None = None,
        downloadable: bool | None = None,
    ) -> ShareAnswer:
        """Create a web link that shares one or more patient orders, optionally password protected.

        Never sent again once it may have reached the server: a repeat would
        make a second link. Hundreds of orders do not fit in one header: put
        them in a folder and share the folder (:meth:`share_folder_with_url`).

        Parameters
        ----------
        patient_order_info_list
            Order UUIDs to share (wrapped as ``PatientOrderInfoList`` items on the wire).
        expire_date
            Last day the link works: a date or ``YYYY-MM-DD``.
        share_password
            Password the link asks for; a public link when not given. Never logged.
        downloadable
            Whether the recipient may download the studies.

        Returns
        -------
        ShareAnswer
            The share; its ``share_url`` opens the studies: treat it like a password.
        """
        return self.call_endpoint(
            table.CREATE_SHARE_LINK,
            dict(
                patient_order_info_list=patient_order_info_list,
                expire_date=expire_date,
                share_password=share_password,
                downloadable=downloadable,
            ),
        )

    def share_patient_order_with_url(
        self,
        order_uuid_list: Sequence[UuidLike],
        expire_date: DateLike,
        share_password: str | SecretStr | None = None,
        user_can_download_studies: bool | None = None,
    ) -> ShareAnswer:
        """Create a shareable URL for selected patient orders, with download permission and password.

        Never sent again once it may have reached the server (a repeat would
        make a second URL).

        Parameters
        ----------
        order_uuid_list
            Order UUIDs to share.
        expire_date
            Last day the URL works: a date or ``YYYY-MM-DD``.
        share_password
            Password the URL asks for; a public URL when not given. Never logged.
        user_can_download_studies
            Whether the recipient may download the studies.

        Returns
        -------
        ShareAnswer
            The share; its ``share_url`` opens the studies: treat it like a password.
        """
        return self.call_endpoint(
            table.SHARE_PATIENT_ORDER_WITH_URL,
            dict(
                order_uuid_list=order_uuid_list,
                expire_date=expire_date,
                share_password=share_password,
                user_can_download_studies=user_can_download_studies,
            ),
        )

    def create_folder(
        self,
        folder_name: str,
        folder_description: str | None = None,
        parent_folder_uuid: UuidLike | None = None,
    ) -> FolderAnswer:
        """Create a folder (a virtual container that organises patient orders).

        Looks before it creates: a SearchFolder request is sent *first*, to
        note the folders of that name and parent that already exist. If the
        CreateFolder request then fails after it may have reached the server,
        another SearchFolder finds the folder the failed attempt made (one
        not in the first list) and returns it instead of creating a second.
        So a successful call costs two requests.

        Parameters
        ----------
        folder_name
            Visible name; not unique on the server.
        folder_description
            Free text.
        parent_folder_uuid
            Create inside this folder; at the top level when not given.

        Returns
        -------
        FolderAnswer
            The new folder (or the one an earlier attempt of this call made).
        """
        return self.call_endpoint(
            table.CREATE_FOLDER,
            dict(folder_name=folder_name, folder_description=folder_description, parent_folder_uuid=parent_folder_uuid),
        )

    def search_folder(
        self,
        parent_folder_uuid: UuidLike | None = None,
        folder_name: str | None = None,
        get_orders_in_folder: bool | None = None,
    ) -> SearchFolderAnswer:
        """Find folders by name and parent, optionally with the orders each holds.

        Parameters
        ----------
        parent_folder_uuid
            Search only the direct children of this folder.
        folder_name
            Full or partial name, case-insensitive.
        get_orders_in_folder
            Also list the orders in each folder found.

        Returns
        -------
        SearchFolderAnswer
            The folders found (``folder_list``).
        """
        return self.call_endpoint(
            table.SEARCH_FOLDER,
            dict(
                parent_folder_uuid=parent_folder_uuid,
                folder_name=folder_name,
                get_orders_in_folder=get_orders_in_folder,
            ),
        )

    def share_folder_with_url(
        self,
        folder_uuid: UuidLike,
        share_password: str | SecretStr | None = None,
        share_title: str | None = None,
        share_description: str | None = None,
        expire_date: DateLike | None = None,
        user_can_download_studies: bool | None = None,
    ) -> ShareAnswer:
        """Create a shareable URL for a whole folder and its contents.

        Never sent again once it may have reached the server (a repeat would
        make a second URL).

        Parameters
        ----------
        folder_uuid
            Folder to share, with everything in it.
        share_password
            Password the URL asks for; a public URL when not given. Never logged.
        share_title
            Title shown on the shared page.
        share_description
            Description shown on the shared page.
        expire_date
            Last day the URL works; it never expires when not given.
        user_can_download_studies
            Whether the recipient may download the studies.

        Returns
        -------
        ShareAnswer
            The share; its ``share_url`` opens the studies: treat it like a password.
        """
        return self.call_endpoint(
            table.SHARE_FOLDER_WITH_URL,
            dict(
                folder_uuid=folder_uuid,
                share_password=share_password,
                share_title=share_title,
                share_description=share_description,
                expire_date=expire_date,
                user_can_download_studies=user_can_download_studies,
            ),
        )

    def add_order_to_folder(
        self,
        patient_order_uuid: UuidLike,
        folder_uuid_list: Sequence[UuidLike],
    ) -> AddOrderToFolderAnswer:
        """Put an existing patient order into existing folders (an association: nothing is copied).

        Repeated on transient failures (adding twice leaves the same state).
        Hundreds of folders are spread over several calls and their answers joined.

        Parameters
        ----------
        patient_order_uuid
            The order to file.
        folder_uuid_list
            Folders to put it in.

        Returns
        -------
        AddOrderToFolderAnswer
            The order's folders, and those this call added.
        """
        return self.call_endpoint(
            table.ADD_ORDER_TO_FOLDER,
            dict(patient_order_uuid=patient_order_uuid, folder_uuid_list=folder_uuid_list),
        )
