"""Template CRUD for operators. Editing publishes a new version (the old one stays, inactive);
deleting deactivates. `POST /api/templates/{id}/preview/` renders one version with a sample context."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from notifications.api.errors import Conflict
from notifications.api.permissions import IsOperator
from notifications.models import Template, templates_cache
from notifications.ops import audit
from notifications.planning import templating


class TemplateSerializer(serializers.ModelSerializer):
    locale = serializers.RegexField(templating.LOCALE, max_length=16, default=lambda: settings.NOTIFY_DEFAULT_LOCALE)
    variables = serializers.ListField(child=serializers.CharField(max_length=100), max_length=100, default=list)
    blocks = serializers.JSONField(default=list, help_text="Slack Block Kit blocks; strings are templates.")

    class Meta:
        model = Template
        fields = [
            "id", "key", "channel", "locale", "version", "active", "subject", "body", "html_body", "blocks",
            "variables", "created_at", "author",
        ]
        read_only_fields = ["version", "active", "created_at", "author"]
        validators = []  # publish() numbers versions; the unique constraints are its business

    def validate_locale(self, value):
        return templating.normalize_locale(value)

    def validate(self, attrs):
        if self.instance is not None:
            for name in ("key", "channel", "locale"):
                if name in attrs and attrs[name] != getattr(self.instance, name):
                    raise serializers.ValidationError({name: ["Create a new template to change this."]})
        merged = {name: attrs.get(name, getattr(self.instance, name, None)) for name in self.content_fields()}
        errors = templating.template_errors(
            merged["subject"] or "", merged["body"] or "", merged["html_body"] or "", merged["blocks"] or [],
            merged["variables"] or [],
        )
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    @staticmethod
    def content_fields():
        return ["subject", "body", "html_body", "blocks", "variables"]

    def publish(self, author=""):
        instance, data = self.instance, self.validated_data
        identity = {name: data.get(name, getattr(instance, name, None)) for name in ("key", "channel", "locale")}
        content = {name: data.get(name, getattr(instance, name, "")) for name in self.content_fields()}
        content["blocks"] = content["blocks"] or []
        content["variables"] = list(dict.fromkeys(content["variables"] or []))
        try:
            return templating.publish(**identity, **content, author=author)
        except templating.VersionConflict as conflict:
            raise Conflict(str(conflict)) from conflict


class PreviewSerializer(serializers.Serializer):
    context = serializers.DictField(required=False, default=dict, help_text="Missing variables get placeholders.")


class PreviewResultSerializer(serializers.Serializer):
    subject = serializers.CharField()
    body = serializers.CharField()
    html = serializers.CharField()
    blocks = serializers.JSONField()
    version = serializers.IntegerField()
    placeholders = serializers.ListField(child=serializers.CharField())


class TemplateViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
    mixins.DestroyModelMixin, viewsets.GenericViewSet,
):
    serializer_class = TemplateSerializer
    permission_classes = [IsAuthenticated, IsOperator]

    def get_queryset(self):
        queryset = Template.objects.order_by("key", "channel", "locale", "-version")
        params = self.request.query_params
        for name in ("key", "channel", "locale"):
            if params.get(name):
                queryset = queryset.filter(**{name: params[name]})
        if params.get("active") in ("true", "false"):
            queryset = queryset.filter(active=params["active"] == "true")
        return queryset

    def perform_create(self, serializer):
        serializer.instance = serializer.publish(author=audit.describe(*audit.actor_of(self.request)))
        audit.record_request(self.request, audit.Action.TEMPLATE_CREATE, serializer.instance,
                             after=audit.template_state(serializer.instance))

    def update(self, request, *args, **kwargs):
        current = self.get_object()
        serializer = self.get_serializer(current, data=request.data, partial=kwargs.get("partial", False))
        serializer.is_valid(raise_exception=True)
        published = serializer.publish(author=audit.describe(*audit.actor_of(request)))
        audit.record_request(request, audit.Action.TEMPLATE_UPDATE, published,
                             before=audit.template_state(current), after=audit.template_state(published))
        return Response(self.get_serializer(published).data)

    def perform_destroy(self, instance):
        Template.objects.filter(pk=instance.pk).update(active=False)
        templates_cache.forget()
        audit.record_request(self.request, audit.Action.TEMPLATE_DELETE, instance,
                             before=audit.template_state(instance), after={"active": False})

    @extend_schema(request=PreviewSerializer, responses=PreviewResultSerializer)
    @action(detail=True, methods=["post"])
    def preview(self, request, pk=None):
        template = self.get_object()
        serializer = PreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        context = {**templating.sample_context(template), **templating.plain(serializer.validated_data["context"])}
        placeholders = [name for name in template.variables if name not in context]
        context.update({name: f"[{name}]" for name in placeholders})
        try:
            rendered = templating.render(template, context)
        except Exception as error:  # noqa: BLE001 (an operator's template must not become a 500)
            raise serializers.ValidationError({"context": [f"The template failed to render: {error}"]}) from error
        return Response({
            "subject": rendered.subject, "body": rendered.body, "html": rendered.html, "blocks": rendered.blocks,
            "version": rendered.version, "placeholders": placeholders,
        })

