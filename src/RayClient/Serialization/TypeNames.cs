using System.Text;

namespace RayClient.Serialization;

/// <summary>Readable .NET type names for messages: <c>System.Collections.Generic.List&lt;System.Int32&gt;</c> instead of the CLR's backtick form.</summary>
internal static class TypeNames
{
    public static string Format(Type type)
    {
        if (Nullable.GetUnderlyingType(type) is { } underlying)
        {
            return Format(underlying) + "?";
        }

        if (type.IsArray)
        {
            return Format(type.GetElementType()!) + "[" + new string(',', type.GetArrayRank() - 1) + "]";
        }

        if (!type.IsGenericType)
        {
            return type.FullName ?? type.Name;
        }

        var sb = new StringBuilder();
        var name = type.GetGenericTypeDefinition().FullName ?? type.Name;
        var tick = name.IndexOf('`', StringComparison.Ordinal);
        sb.Append(tick < 0 ? name : name[..tick]).Append('<');
        var arguments = type.GetGenericArguments();
        for (var i = 0; i < arguments.Length; i++)
        {
            if (i > 0)
            {
                sb.Append(", ");
            }

            sb.Append(Format(arguments[i]));
        }

        return sb.Append('>').ToString();
    }
}
