{#- A ratio that is null rather than an error when the denominator is 0. -#}
{% macro safe_divide(numerator, denominator) -%}
    ({{ numerator }})::double / nullif({{ denominator }}, 0)
{%- endmacro %}
