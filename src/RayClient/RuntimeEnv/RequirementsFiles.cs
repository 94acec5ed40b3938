namespace RayClient.Packaging;

/// <summary>Package lists of <c>pip</c>/<c>uv</c>: a list, or a local requirements file read on the client as Ray does.</summary>
internal static class RequirementsFiles
{
    /// <summary>
    /// The package list: the file's text (universal newlines, stripped, split on '\n' — as
    /// <c>Path.read_text().strip().split("\n")</c>) or the given list, duplicates removed with the
    /// first occurrence kept (pip fails on "Double requirement given").
    /// </summary>
    public static List<string> Resolve(IReadOnlyList<string>? packages, string? file, string field)
    {
        if (packages is not null && file is not null)
        {
            throw new RayRuntimeEnvException($"runtime_env['{field}']: give either a package list or a requirements file, not both.");
        }

        IEnumerable<string> items;
        if (file is not null)
        {
            if (!File.Exists(file))
            {
                throw new RayRuntimeEnvException($"runtime_env['{field}']: {file} is not a valid file.");
            }

            string text;
            try
            {
                text = File.ReadAllText(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new RayRuntimeEnvException($"runtime_env['{field}']: cannot read {file}: {e.Message}", e);
            }

            text = text.Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n');
            items = GitWildMatchPattern.PyStrip(text).Split('\n');
        }
        else
        {
            items = packages ?? throw new RayRuntimeEnvException($"runtime_env['{field}'] must include field 'packages'.");
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        var result = new List<string>();
        foreach (var item in items)
        {
            if (item is null)
            {
                throw new RayRuntimeEnvException($"runtime_env['{field}'] must be a list of strings, got a null element.");
            }

            if (seen.Add(item))
            {
                result.Add(item);
            }
        }

        return result;
    }

    /// <summary>Rejects null elements that the C# type system lets through.</summary>
    public static void CheckStrings(IReadOnlyList<string>? values, string field)
    {
        if (values is not null && values.Any(v => v is null))
        {
            throw new RayRuntimeEnvException($"runtime_env['{field}'] must be a list of strings, got a null element.");
        }
    }
}
