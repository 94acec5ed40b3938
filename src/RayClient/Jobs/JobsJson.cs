using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace RayClient.Jobs;

/// <summary>
/// <c>POST /api/jobs/</c>'s body (ray:python/ray/dashboard/modules/job/common.py :: JobSubmitRequest).
/// Null fields are left out: a server rejects keys it does not know with 400, so a field an older
/// cluster lacks must not be sent at all (Ray's <c>strip_keys_with_value_none</c>).
/// </summary>
internal sealed class JobSubmitRequestJson
{
    [JsonPropertyName("entrypoint")]
    public required string Entrypoint { get; init; }

    [JsonPropertyName("submission_id")]
    public string? SubmissionId { get; init; }

    [JsonPropertyName("runtime_env")]
    public JsonObject? RuntimeEnv { get; init; }

    [JsonPropertyName("metadata")]
    public Dictionary<string, string>? Metadata { get; init; }

    [JsonPropertyName("entrypoint_num_cpus")]
    public double? EntrypointNumCpus { get; init; }

    [JsonPropertyName("entrypoint_num_gpus")]
    public double? EntrypointNumGpus { get; init; }

    [JsonPropertyName("entrypoint_memory")]
    public long? EntrypointMemory { get; init; }

    [JsonPropertyName("entrypoint_resources")]
    public Dictionary<string, double>? EntrypointResources { get; init; }
}

/// <summary><c>JobSubmitResponse</c>: both fields hold the submission id.</summary>
internal sealed class JobSubmitResponseJson
{
    [JsonPropertyName("job_id")]
    public string? JobId { get; init; }

    [JsonPropertyName("submission_id")]
    public string? SubmissionId { get; init; }
}

/// <summary><c>JobStopResponse</c>.</summary>
internal sealed class JobStopResponseJson
{
    [JsonPropertyName("stopped")]
    public bool Stopped { get; init; }
}

/// <summary><c>JobDeleteResponse</c>.</summary>
internal sealed class JobDeleteResponseJson
{
    [JsonPropertyName("deleted")]
    public bool Deleted { get; init; }
}

/// <summary><c>JobLogsResponse</c>.</summary>
internal sealed class JobLogsResponseJson
{
    [JsonPropertyName("logs")]
    public string Logs { get; init; } = string.Empty;
}

/// <summary>
/// Source-generated serialization of the Jobs API's JSON (reflection-based System.Text.Json is
/// off in .NET 10 file-based and trimmed apps).
/// </summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(JobSubmitRequestJson))]
[JsonSerializable(typeof(JobSubmitResponseJson))]
[JsonSerializable(typeof(JobStopResponseJson))]
[JsonSerializable(typeof(JobDeleteResponseJson))]
[JsonSerializable(typeof(JobLogsResponseJson))]
[JsonSerializable(typeof(JobDetails))]
[JsonSerializable(typeof(List<JobDetails>))]
[JsonSerializable(typeof(JobsApiVersion))]
[JsonSerializable(typeof(Dictionary<string, string>))]
[JsonSerializable(typeof(Dictionary<string, double>))]
internal sealed partial class JobsJsonContext : JsonSerializerContext
{
}
