using System.Collections;
using RayClient.Serialization;

namespace RayClient.Server;

/// <summary>
/// Reads namespace and runtime env out of <c>InitRequest.job_config</c> without running Python: the
/// pickle is either <c>JobConfig.from_json(dict)</c> (RayClient, ray-versions.md §4.3) or a
/// <c>JobConfig</c> instance restored by BUILD (Python clients).
/// </summary>
internal static class JobConfigReader
{
    public static (string? Namespace, Dictionary<string, object?>? RuntimeEnv) Read(ReadOnlyMemory<byte> pickle)
    {
        if (pickle.IsEmpty)
        {
            return (null, null);
        }

        var value = PickleReader.Read(pickle);
        IDictionary? fields = value switch
        {
            PyObject { Args.Count: > 0 } call when call.Args[0] is IDictionary json => json,
            PyObject { State: IDictionary state } => state,
            IDictionary dict => dict,
            _ => null,
        };
        if (fields is null)
        {
            throw new InvalidOperationException("The job config is neither JobConfig.from_json(dict) nor a JobConfig instance.");
        }

        var ns = fields.Contains("ray_namespace") ? fields["ray_namespace"] as string : null;
        Dictionary<string, object?>? env = null;
        if (fields.Contains("runtime_env"))
        {
            var raw = fields["runtime_env"] switch
            {
                IDictionary d => d,
                PyObject { State: IDictionary s } => s,
                _ => null,
            };
            if (raw is not null)
            {
                env = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (DictionaryEntry entry in raw)
                {
                    if (entry.Key is string key)
                    {
                        env[key] = entry.Value;
                    }
                }
            }
        }

        return (ns, env);
    }
}
