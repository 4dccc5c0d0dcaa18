"""The admin site: operators see every organization. Every ModelAdmin (and inline) of a
tenant-owned model takes :class:`EveryTenantAdmin`, so its lists, forms and choices read
through the escape hatch with that reason."""

from django.contrib import admin

from portal.tenancy.models import Invitation, Membership, Organization, TenantOwnedModel


def _every(model: type[TenantOwnedModel]):
    return model.objects.unscoped("the admin site: operators see every organization")


class EveryTenantAdmin:
    """For a ModelAdmin or inline of a tenant-owned model (first among its bases)."""

    def get_queryset(self, request):
        queryset = _every(self.model)
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.remote_field.model
        if issubclass(related, TenantOwnedModel) and "queryset" not in kwargs:
            kwargs["queryset"] = _every(related)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_formset(self, request, obj=None, **kwargs):
        base = kwargs.get("formset", self.formset)
        kwargs["formset"] = type(base.__name__, (_EveryTenantForms, base), {})
        return super().get_formset(request, obj, **kwargs)


class _EveryTenantForms:
    """Formsets find their existing rows through a hidden choice of the model's default
    manager (Django's ``add_fields``); give it every organization's rows too."""

    def add_fields(self, form, index):
        super().add_fields(form, index)
        pk = form.fields.get(self._pk_field.name)
        if pk is not None and hasattr(pk, "queryset"):
            pk.queryset = _every(self.model)


class MembershipInline(EveryTenantAdmin, admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(EveryTenantAdmin, admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "organization__name"]


@admin.register(Invitation)
class InvitationAdmin(EveryTenantAdmin, admin.ModelAdmin):
    list_display = ["email", "organization", "role", "created_at", "expires_at", "accepted_at"]
    exclude = ["token_hash"]
    readonly_fields = ["organization", "email", "role", "invited_by", "expires_at", "accepted_at"]
