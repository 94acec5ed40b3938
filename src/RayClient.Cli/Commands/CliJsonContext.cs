using System.Text.Json.Serialization;
using RayClient.Jobs;

namespace RayClient.Cli.Commands;

/// <summary>
/// JSON the tool prints (<c>job list --format json</c>), over the client's public job types: their
/// <c>[JsonPropertyName]</c> names are the REST API's, so the output is what <c>GET /api/jobs/</c>
/// returns, nulls left out. Source-generated, as the tool is trimmed-safe.
/// </summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(List<JobDetails>))]
internal sealed partial class CliJsonContext : JsonSerializerContext;
