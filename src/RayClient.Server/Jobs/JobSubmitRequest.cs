using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace RayClient.Server.Jobs;

/// <summary>A request the Jobs API refuses; <see cref="StatusCode"/> and the plain-text body are Ray's.</summary>
internal sealed class JobsApiException(int statusCode, string body) : Exception(body)
{
    public int StatusCode { get; } = statusCode;

    /// <summary>A body in the shape Ray sends, a Python traceback ending in <c>Type: message</c>.</summary>
    public static JobsApiException Traceback(int statusCode, string pythonType, string message) =>
        new(statusCode, $"Traceback (most recent call last):\n  File \"rayclient-embedded-server\", in jobs_api\n{pythonType}: {message}\n");
}

/// <summary>
/// The body of <c>POST /api/jobs/</c>, checked as Ray's <c>JobSubmitRequest</c> dataclass checks it
/// (ray: python/ray/dashboard/modules/job/common.py, and utils.py parse_and_validate_request):
/// keys whose value is null are dropped first, an unknown key is a 400 TypeError, as is a value of
/// the wrong type; <c>runtime_env</c> is only checked to be an object (deeper problems fail the job).
/// </summary>
internal sealed class JobSubmitRequest
{
    private static readonly HashSet<string> Known = new(StringComparer.Ordinal)
    {
        "entrypoint", "submission_id", "job_id", "runtime_env", "metadata", "entrypoint_num_cpus",
        "entrypoint_num_gpus", "entrypoint_memory", "entrypoint_resources",
    };

    public required string Entrypoint { get; init; }

    public string? SubmissionId { get; init; }

    public JsonObject? RuntimeEnv { get; init; }

    public Dictionary<string, string>? Metadata { get; init; }

    public double NumCpus { get; init; }

    public double NumGpus { get; init; }

    public long Memory { get; init; }

    public Dictionary<string, double>? Resources { get; init; }

    public static JobSubmitRequest Parse(ReadOnlySpan<byte> body)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(body);
        }
        catch (JsonException ex)
        {
            // Ray's handler calls req.json() outside its try: aiohttp answers 500.
            throw JobsApiException.Traceback(500, "json.decoder.JSONDecodeError", ex.Message);
        }

        if (node is not JsonObject json)
        {
            throw JobsApiException.Traceback(500, "AttributeError", $"'{PythonType(node)[8..^2]}' object has no attribute 'items'");
        }

        var fields = json.Where(kv => kv.Value is not null).ToDictionary(kv => kv.Key, kv => kv.Value!, StringComparer.Ordinal);
        foreach (var key in fields.Keys)
        {
            if (!Known.Contains(key))
            {
                throw BadRequest($"JobSubmitRequest.__init__() got an unexpected keyword argument '{key}'");
            }
        }

        if (!fields.TryGetValue("entrypoint", out var entrypoint))
        {
            throw BadRequest("JobSubmitRequest.__init__() missing 1 required positional argument: 'entrypoint'");
        }

        if (!IsString(entrypoint))
        {
            throw BadRequest($"entrypoint must be a string, got {PythonType(entrypoint)}");
        }

        string? submissionId = null;
        if (fields.TryGetValue("submission_id", out var sid))
        {
            submissionId = IsString(sid) ? (string)sid! : throw BadRequest($"submission_id must be a string if provided, got {PythonType(sid)}");
        }

        if (fields.TryGetValue("job_id", out var jid))
        {
            var legacy = IsString(jid) ? (string)jid! : throw BadRequest($"job_id must be a string if provided, got {PythonType(jid)}");
            if (string.IsNullOrEmpty(submissionId))
            {
                submissionId = legacy; // Ray: the deprecated job_id is used only when submission_id is absent or empty
            }
        }

        JsonObject? runtimeEnv = null;
        if (fields.TryGetValue("runtime_env", out var env))
        {
            runtimeEnv = env as JsonObject ?? throw BadRequest($"runtime_env must be a dict, got {PythonType(env)}");
        }

        Dictionary<string, string>? metadata = null;
        if (fields.TryGetValue("metadata", out var meta))
        {
            if (meta is not JsonObject metaObject)
            {
                throw BadRequest($"metadata must be a dict, got {PythonType(meta)}");
            }

            metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (key, value) in metaObject)
            {
                metadata[key] = IsString(value) ? (string)value! : throw BadRequest($"metadata values must be strings, got {PythonType(value)}");
            }
        }

        var cpus = Number(fields, "entrypoint_num_cpus", "entrypoint_num_cpus must be a number");
        var gpus = Number(fields, "entrypoint_num_gpus", "entrypoint_num_gpus must be a number");
        long memory = 0;
        if (fields.TryGetValue("entrypoint_memory", out var mem))
        {
            memory = IsInteger(mem, out var m) ? m : throw BadRequest($"entrypoint_memory must be an integer, got {PythonType(mem)}");
        }

        Dictionary<string, double>? resources = null;
        if (fields.TryGetValue("entrypoint_resources", out var res))
        {
            if (res is not JsonObject resObject)
            {
                throw BadRequest($"entrypoint_resources must be a dict, got {PythonType(res)}");
            }

            resources = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var (key, value) in resObject)
            {
                resources[key] = IsNumber(value, out var amount) ? amount : throw BadRequest($"entrypoint_resources values must be numbers, got {PythonType(value)}");
            }
        }

        return new JobSubmitRequest
        {
            Entrypoint = (string)entrypoint!,
            SubmissionId = string.IsNullOrEmpty(submissionId) ? null : submissionId,
            RuntimeEnv = runtimeEnv,
            Metadata = metadata,
            NumCpus = cpus,
            NumGpus = gpus,
            Memory = memory,
            Resources = resources,
        };
    }

    private static double Number(Dictionary<string, JsonNode> fields, string name, string message)
    {
        if (!fields.TryGetValue(name, out var value))
        {
            return 0;
        }

        return IsNumber(value, out var number) ? number : throw BadRequest($"{message}, got {PythonType(value)}");
    }

    private static JobsApiException BadRequest(string message) => JobsApiException.Traceback(400, "TypeError", message);

    private static bool IsString(JsonNode? node) => node is JsonValue value && value.GetValueKind() == JsonValueKind.String;

    /// <summary>Python's isinstance(v, (int, float)); a bool is an int in Python, so it passes too.</summary>
    private static bool IsNumber(JsonNode? node, out double number)
    {
        number = 0;
        if (node is not JsonValue value)
        {
            return false;
        }

        switch (value.GetValueKind())
        {
            case JsonValueKind.Number:
                number = value.GetValue<double>();
                return true;
            case JsonValueKind.True:
                number = 1;
                return true;
            case JsonValueKind.False:
                return true;
            default:
                return false;
        }
    }

    private static bool IsInteger(JsonNode? node, out long number)
    {
        number = 0;
        if (node is not JsonValue value)
        {
            return false;
        }

        return value.GetValueKind() switch
        {
            JsonValueKind.Number => long.TryParse(value.ToJsonString(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out number),
            JsonValueKind.True => (number = 1) == 1,
            JsonValueKind.False => true,
            _ => false,
        };
    }

    /// <summary>What Python's <c>type(v)</c> prints for a value parsed from JSON.</summary>
    internal static string PythonType(JsonNode? node) => node switch
    {
        null => "<class 'NoneType'>",
        JsonObject => "<class 'dict'>",
        JsonArray => "<class 'list'>",
        JsonValue value => value.GetValueKind() switch
        {
            JsonValueKind.String => "<class 'str'>",
            JsonValueKind.True or JsonValueKind.False => "<class 'bool'>",
            JsonValueKind.Number => value.ToJsonString().AsSpan().IndexOfAny(".eE") >= 0 ? "<class 'float'>" : "<class 'int'>",
            _ => "<class 'NoneType'>",
        },
        _ => "<class 'object'>",
    };

    /// <summary>What Python's <c>str(v)</c> prints for a value parsed from JSON.</summary>
    internal static string PythonStr(JsonNode? node) => node switch
    {
        null => "None",
        JsonValue value when value.GetValueKind() == JsonValueKind.String => value.GetValue<string>(),
        JsonValue value when value.GetValueKind() == JsonValueKind.True => "True",
        JsonValue value when value.GetValueKind() == JsonValueKind.False => "False",
        _ => node.ToJsonString(),
    };
}
