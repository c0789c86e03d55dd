"""Query-string filters: what the schema says is what is accepted."""

from rest_framework import serializers


class StrictQuery(serializers.Serializer):
    """A filter given with an empty value (`?status=`) is a 400, not silently ignored: DRF treats
    an empty form value of an optional field as absent, while the schema forbids it."""

    def to_internal_value(self, data):
        blank = {
            name: ["This filter may not be empty."]
            for name in self.fields
            if hasattr(data, "getlist") and name in data and any(value == "" for value in data.getlist(name))
        }
        if blank:
            raise serializers.ValidationError(blank)
        return super().to_internal_value(data)
