{#- The category a person can read: category_code, else 'id:<category_id>' (the cosmetics
    files carry only numeric ids), else 'unknown'. Applied after aggregating by the two raw
    columns, so the label is built once per group rather than once per event. -#}
{% macro category_label(code, id) -%}
    coalesce({{ code }}, 'id:' || cast({{ id }} as string), 'unknown')
{%- endmacro %}
