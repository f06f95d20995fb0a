"""Requests and answers of the discovery API (`workflows/match/`, `workflows/suggest-chain/`)."""
from rest_framework import serializers

TASK_MAX_LENGTH = 1000
CAPABILITY_MAX_LENGTH = 200


class MatchQuerySerializer(serializers.Serializer):
    task = serializers.CharField(max_length=TASK_MAX_LENGTH, help_text="what you want done, in words")


class MatchSerializer(serializers.Serializer):
    workflow = serializers.CharField()
    score = serializers.FloatField()
    why = serializers.CharField()


class MatchListSerializer(serializers.Serializer):
    matches = MatchSerializer(many=True)


class SuggestChainRequestSerializer(serializers.Serializer):
    inputs = serializers.ListField(child=serializers.CharField(max_length=CAPABILITY_MAX_LENGTH), max_length=100,
                                   help_text="the capabilities you have")
    goal = serializers.CharField(max_length=CAPABILITY_MAX_LENGTH, help_text="the capability you want")


class ChainSerializer(serializers.Serializer):
    workflows = serializers.ListField(child=serializers.CharField())
    produces = serializers.ListField(child=serializers.CharField())


class ChainListSerializer(serializers.Serializer):
    chains = ChainSerializer(many=True)
