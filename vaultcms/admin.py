"""Admin building blocks every app shares."""


class ReadOnlyAdminMixin:
    """Rows the app writes and people only read: no add form, no change form.

    `deletable = False` where deleting a row would also lose history (decisions, exports).
    """

    deletable = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return self.deletable and super().has_delete_permission(request, obj)
